using Platform.Contracts;

namespace Platform.Api.Audit;

/// <summary>
/// What a change was made to, as the audit log names it: a kind and a name (<c>app acme/web/shop</c>,
/// <c>member bob@example.com (project acme/web)</c>, <c>token 0193… (ci)</c>). Read from the route, the request
/// body (creates carry the new name there) and, for what the server generates (a token's id), the response.
/// Only names and ids are ever taken: never a secret (passwords, tokens, webhook secrets, env values).
/// </summary>
public static class AuditTargets
{
    public static string Describe(Func<string, string?> route, IEnumerable<object?> arguments, object? result)
    {
        var team = route("team");
        var project = route("project");
        var app = route("app");
        foreach (var argument in arguments)
        {
            switch (argument)
            {
                case CreateTeamRequest t: team = t.Name; break;
                case CreateProjectRequest p: project = p.Name; break;
                case CreateAppRequest a: app = a.Name; break;
                case CreateUserRequest u: return $"user {u.Email}";
                case CreateTokenRequest t: return Created(result) is CreatedTokenResponse c ? $"token {c.Id} ({c.Name})" : $"token ({t.Name})";
                case CreateJoinTokenRequest: return "join token";
                case NodeJoinRequest n: return $"node {n.Name}";
            }
        }
        if (route("id") is { } id) return $"token {id}";   // DELETE /me/tokens/{id}, the only {id} route
        var scope = project is null ? $"team {team}" : $"project {team}/{project}";
        if (route("email") is { } email) return $"member {email} ({scope})";
        if (app is not null)
        {
            var path = $"{team}/{project}/{app}";
            if (route("number") is { } number) return $"build {path}#{number}";
            if (route("version") is { } version) return $"release {path} v{version}";
            if (route("host") is { } host) return $"domain {host} (app {path})";
            return Created(result) is BuildResponse b ? $"build {path}#{b.Number}" : $"app {path}";
        }
        return project is not null || team is not null ? scope : "";
    }

    /// <summary>The value of a 201, looking through <c>Results&lt;…&gt;</c> unions.</summary>
    private static object? Created(object? result) => result switch
    {
        INestedHttpResult nested => Created(nested.Result),
        IValueHttpResult { Value: var value } and IStatusCodeHttpResult { StatusCode: StatusCodes.Status201Created } => value,
        _ => null,
    };
}
