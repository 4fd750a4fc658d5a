using System.CommandLine;

namespace Platform.Cli;

/// <summary>
/// <c>platform completion bash|zsh</c>: a script for the shell that asks this CLI itself for the words that fit
/// (System.CommandLine's <c>[suggest]</c> directive), so completion always matches the installed version.
/// </summary>
public static class CompletionCommand
{
    private const string Bash = """
        # platform: bash completion (source it, or save it under /etc/bash_completion.d/platform)
        _platform_complete() {
          local IFS=$'\n' cur="${COMP_WORDS[COMP_CWORD]}"
          COMPREPLY=( $(compgen -W "$(platform "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null)" -- "$cur") )
        }
        complete -o default -F _platform_complete platform
        """;

    private const string Zsh = """
        # platform: zsh completion (source it from ~/.zshrc)
        _platform_complete() {
          local -a words
          words=("${(@f)$(platform "[suggest:${#BUFFER}]" "$BUFFER" 2>/dev/null)}")
          compadd -- ${(M)words:#${PREFIX}*}
        }
        compdef _platform_complete platform
        """;

    public static Command Build(TextWriter stdout)
    {
        var shell = new Argument<string>("shell") { Description = "bash or zsh" };
        shell.AcceptOnlyFromAmong("bash", "zsh");
        var command = new Command("completion", """
            Print the shell's completion script for platform.

            Examples:
              source <(platform completion bash)
              platform completion zsh > ~/.zsh/platform.zsh
            """) { shell };
        command.SetAction(parse =>
        {
            stdout.WriteLine(parse.GetValue(shell) == "zsh" ? Zsh : Bash);
            return 0;
        });
        return command;
    }
}
