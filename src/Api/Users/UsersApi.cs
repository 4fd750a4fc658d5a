using System.Net.Mail;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Identity;
using Platform.Api.Infrastructure;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Users;

public static class UsersApi
{
    public static RouteGroupBuilder MapUsersApi(this RouteGroupBuilder api)
    {
        api.MapGet("/users", ListAsync).WithName("users.list");
        api.MapPost("/users", CreateAsync).WithName("users.create");
        api.MapGet("/me", MeAsync).WithName("me.get");
        api.MapGet("/me/tokens", ListTokensAsync).WithName("me.tokens.list");
        api.MapPost("/me/tokens", CreateTokenAsync).WithName("me.tokens.create");
        api.MapDelete("/me/tokens/{id}", RevokeTokenAsync).WithName("me.tokens.revoke");
        return api;
    }

    private static async Task<Results<Ok<Page<UserResponse>>, ProblemHttpResult>> ListAsync(
        int? limit, string? after, AccessService access, PlatformDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (Paging.Check(limit) is { } bad) return bad;
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins list users.");
        var take = Paging.Take(limit);
        var query = db.Users.AsNoTracking();
        if (after is not null) query = query.Where(u => string.Compare(u.NormalizedEmail, after.ToUpperInvariant()) > 0);
        var rows = await query.OrderBy(u => u.NormalizedEmail).Take(take + 1)
            .Select(u => new { u.Id, u.Email, u.NormalizedEmail, u.IsPlatformAdmin, u.CreatedAt, u.LockoutEnd }).ToListAsync(ct);
        var (items, next) = Paging.Split(rows, take, u => u.Email ?? "");
        var now = clock.GetUtcNow();
        return TypedResults.Ok(new Page<UserResponse>(
            items.Select(u => new UserResponse(u.Id, u.Email ?? "", u.IsPlatformAdmin, u.CreatedAt, u.LockoutEnd > now)).ToList(), next));
    }

    private static async Task<Results<Created<UserResponse>, ProblemHttpResult>> CreateAsync(
        CreateUserRequest body, AccessService access, UserManager<PlatformUser> users, TimeProvider clock, CancellationToken ct)
    {
        if (!access.Caller.IsPlatformAdmin) return Problems.Forbidden("Only platform admins create users.");
        var errors = new Problems.Errors();
        if (!IsEmail(body.Email)) errors.Add("email", "must be an email address (at most 254 characters).");
        if (string.IsNullOrEmpty(body.Password)) errors.Add("password", "is required.");
        else if (body.Password.Length > 128) errors.Add("password", "must be at most 128 characters.");
        if (errors.Any) return errors.ToProblem();
        if (await users.FindByEmailAsync(body.Email!) is not null)
            return Problems.Conflict("email", $"A user with the email '{body.Email}' exists.");

        var user = new PlatformUser
        {
            UserName = body.Email, Email = body.Email, EmailConfirmed = true,
            IsPlatformAdmin = body.PlatformAdmin, CreatedAt = clock.GetUtcNow().UtcDateTime,
        };
        var result = await users.CreateAsync(user, body.Password!);
        if (!result.Succeeded)
        {
            foreach (var e in result.Errors)
                errors.Add(e.Code.StartsWith("Password", StringComparison.Ordinal) ? "password"
                    : e.Code.Contains("Email", StringComparison.Ordinal) || e.Code.Contains("UserName", StringComparison.Ordinal) ? "email" : "body",
                    e.Description);
            return result.Errors.Any(e => e.Code is "DuplicateEmail" or "DuplicateUserName")
                ? Problems.Conflict("email", $"A user with the email '{body.Email}' exists.")
                : errors.ToProblem();
        }
        return TypedResults.Created($"/api/v1/users/{user.Id}", new UserResponse(user.Id, user.Email!, user.IsPlatformAdmin, user.CreatedAt, false));
    }

    internal static bool IsEmail(string? value)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Length > 254 || value.Any(char.IsControl) || value.Trim() != value)
            return false;
        return MailAddress.TryCreate(value, out var address) && address.Address == value;
    }

    private static async Task<Ok<MeResponse>> MeAsync(AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var caller = access.Caller;
        var roles = await db.Memberships.AsNoTracking().Where(m => m.UserId == caller.UserId)
            .Select(m => new { Team = m.Team!.Name, Project = m.Project == null ? null : m.Project.Name, m.Role })
            .ToListAsync(ct);
        return TypedResults.Ok(new MeResponse(caller.UserId, caller.Email, caller.IsPlatformAdmin,
            roles.OrderBy(r => r.Team).ThenBy(r => r.Project).Select(r => new MembershipResponse(r.Team, r.Project, r.Role.ToWire())).ToList()));
    }

    private static async Task<Ok<Page<TokenResponse>>> ListTokensAsync(AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var rows = await db.PersonalAccessTokens.AsNoTracking().Where(t => t.UserId == access.Caller.UserId)
            .OrderByDescending(t => t.CreatedAt)
            .Select(t => new TokenResponse(t.Id.ToString(), t.Name, t.Prefix, t.CreatedAt, t.ExpiresAt, t.LastUsedAt, t.RevokedAt))
            .ToListAsync(ct);
        return TypedResults.Ok(new Page<TokenResponse>(rows, null));
    }

    private static async Task<Results<Created<CreatedTokenResponse>, ProblemHttpResult>> CreateTokenAsync(
        CreateTokenRequest body, AccessService access, PlatformDbContext db, IOptions<PlatformOptions> options,
        TimeProvider clock, CancellationToken ct)
    {
        var max = options.Value.MaxTokenLifetimeDays;
        var errors = new Problems.Errors();
        if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Length > 100 || body.Name.Any(char.IsControl))
            errors.Add("name", "is required: 1 to 100 characters, no control characters.");
        errors.Range("expiresInDays", body.ExpiresInDays, 1, max);
        if (errors.Any) return errors.ToProblem();
        if (await db.PersonalAccessTokens.CountAsync(t => t.UserId == access.Caller.UserId && t.RevokedAt == null, ct) >= 100)
            return Problems.Validation("name", "You hold 100 tokens; revoke some first.");

        var secret = TokenSecrets.NewSecret(TokenSecrets.PatPrefix);
        var now = clock.GetUtcNow().UtcDateTime;
        var token = new PersonalAccessToken
        {
            UserId = access.Caller.UserId, Name = body.Name!, Prefix = secret[..12], Hash = TokenSecrets.Hash(secret),
            CreatedAt = now, ExpiresAt = now.AddDays(body.ExpiresInDays ?? 30),
        };
        db.PersonalAccessTokens.Add(token);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/api/v1/me/tokens/{token.Id}", new CreatedTokenResponse(token.Id.ToString(), token.Name, secret, token.ExpiresAt));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> RevokeTokenAsync(
        string id, AccessService access, PlatformDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (!Guid.TryParse(id, out var guid)) return Problems.NotFound($"Token '{id}'");
        var now = clock.GetUtcNow().UtcDateTime;
        var n = await db.PersonalAccessTokens.Where(t => t.Id == guid && t.UserId == access.Caller.UserId && t.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, now), ct);
        return n == 0 ? Problems.NotFound($"Token '{id}'") : TypedResults.NoContent();
    }
}
