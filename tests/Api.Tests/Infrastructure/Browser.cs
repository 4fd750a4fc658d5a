using System.Net;
using System.Text.RegularExpressions;
using System.Web;

namespace Platform.Api.Tests.Infrastructure;

/// <summary>A person's browser on the Api's own pages: cookies, no automatic redirects, the sign-in form filled in when a page sends it there.</summary>
public static partial class Browser
{
    [GeneratedRegex("name=\"__RequestVerificationToken\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();

    /// <summary>The antiforgery token of a page's form.</summary>
    public static string Antiforgery(string html) => WebUtility.HtmlDecode(AntiforgeryField().Match(html).Groups[1].Value);

    public static HttpClient Open(PlatformHost host) =>
        host.Http(handler: new SocketsHttpHandler { AllowAutoRedirect = false, CookieContainer = new CookieContainer(), UseCookies = true });

    /// <summary>Opens <paramref name="link"/>; when it sends the browser to the sign-in page, signs in there and comes back. Returns the last page.</summary>
    public static async Task<(HttpResponseMessage Page, string Html, HttpClient Browser)> VisitSignedInAsync(PlatformHost host, string link, string email, string password, HttpClient? browser = null)
    {
        browser ??= Open(host);
        var page = await browser.GetAsync(link);
        if (page.StatusCode == HttpStatusCode.Redirect && page.Headers.Location is { } to
            && (to.IsAbsoluteUri ? to.AbsolutePath : to.OriginalString).StartsWith("/account/login", StringComparison.Ordinal))
        {
            var login = await (await browser.GetAsync(to)).Content.ReadAsStringAsync();
            var posted = await browser.PostAsync("/account/login", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["__RequestVerificationToken"] = Antiforgery(login),
                ["email"] = email, ["password"] = password, ["returnUrl"] = HttpUtility.ParseQueryString(to.Query)["ReturnUrl"]!,
            }));
            Assert.Equal(HttpStatusCode.Redirect, posted.StatusCode);
            page = await browser.GetAsync(posted.Headers.Location);
        }
        return (page, await page.Content.ReadAsStringAsync(), browser);
    }

    /// <summary>Approves (or denies) a device sign-in on the approval page the browser shows.</summary>
    public static Task<HttpResponseMessage> DecideDeviceAsync(HttpClient browser, string html, string userCode, string decision, bool withAntiforgery = true)
    {
        var form = new Dictionary<string, string> { ["user_code"] = userCode, ["decision"] = decision };
        if (withAntiforgery) form["__RequestVerificationToken"] = Antiforgery(html);
        return browser.PostAsync("/connect/verify", new FormUrlEncodedContent(form));
    }
}
