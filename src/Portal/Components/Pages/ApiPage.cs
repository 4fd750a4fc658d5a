using Microsoft.AspNetCore.Components;
using MudBlazor;
using Platform.Portal.Api;

namespace Platform.Portal.Components.Pages;

/// <summary>The states every page shows the same way: loading, forbidden, not found, error, and its content.</summary>
public enum PageState { Loading, Ready, Forbidden, NotFound, Error }

public abstract class ApiPage : ComponentBase
{
    [Inject] protected IPlatformApi Api { get; set; } = null!;
    [Inject] protected ISnackbar Snackbar { get; set; } = null!;
    [Inject] protected IDialogService Dialogs { get; set; } = null!;

    protected PageState State { get; private set; } = PageState.Loading;
    protected string? Error { get; private set; }

    /// <summary>Loads the page's data, turning the Api's answers into the page's state.</summary>
    protected async Task LoadAsync(Func<Task> load)
    {
        State = PageState.Loading;
        try
        {
            await load();
            State = PageState.Ready;
        }
        catch (ApiProblem p) when (p.IsForbidden)
        {
            State = PageState.Forbidden;
            Error = p.Detail ?? p.Title;
        }
        catch (ApiProblem p) when (p.IsNotFound)
        {
            State = PageState.NotFound;
            Error = p.Detail ?? p.Title;
        }
        catch (Exception e) when (ApiProblem.IsCallFailure(e))
        {
            State = PageState.Error;
            Error = e.Message;
        }
    }
}
