using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Platform.Api.Access;
using Platform.Api.Quotas;
using Platform.Api.Registry;
using Platform.Api.Releases;
using Platform.Api.Rollouts;
using Platform.Api.Scheduling;
using Platform.Data;

namespace Platform.Api.Deployments;

/// <summary>A new image for an app and what its release says about it.</summary>
public sealed record Deploy(string Image, string Description, string? Commit = null, int? BuildNumber = null);

/// <summary>What an app's instances are made of: a change of any of it is a new generation (a surge rollout).</summary>
public readonly record struct RunSpec(string? Image, int MemoryMiB, int CpuMillicores, int Port, string Env)
{
    public static RunSpec Of(App a) => new(a.Image, a.MemoryMiB, a.CpuMillicores, a.Port,
        string.Join('\n', a.Env.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => e.Key + "=" + e.Value)));
}

/// <summary>
/// The one path that changes what an app runs — create, PATCH, rollback and a build's release all go
/// through it, so they follow the same rules: the change happens inside the team's admission (the
/// lock <see cref="QuotaService.BeginAdmissionAsync"/> takes, so it is serialised with every other
/// change of the team's apps on any replica); a new image is a numbered release (<see cref="ReleaseService"/>,
/// pinned to its digest); a change of what instances are made of bumps the generation; after the commit
/// the placement reconciles the app. Callers save their own further changes in the same transaction
/// (a build writes its success there), so nothing is half done. A person who names an image (create,
/// PATCH, rollback) must be allowed to pull it (<see cref="MayRunAsync"/>).
/// </summary>
public sealed class DeploymentService(PlatformDbContext db, QuotaService quotas, ReleaseService releases, PlacementService placement,
    RegistryAuth registry, TimeProvider clock)
{
    /// <summary>
    /// Null when <paramref name="caller"/> may pull <paramref name="image"/> from the platform registry, else the
    /// problem naming <c>image</c>: running an image is reading it, so an app runs only what the person asking
    /// could pull with <c>docker pull</c> — a developer of one project cannot run another project's image by
    /// naming it (tag or digest), since the instances would hand it to them. A repository the caller holds no role
    /// for is a 404 (its existence is not leaked), as the registry answers.
    /// </summary>
    public async Task<ProblemHttpResult?> MayRunAsync(Caller caller, string image, CancellationToken ct)
    {
        var (repository, _, _) = ImageResolver.Split(image);
        if (RegistryNames.Parse(repository) is not { } name)
            return ImageProblem(StatusCodes.Status422UnprocessableEntity, $"'{repository}' is not a repository of the platform registry.");
        var actions = await registry.RoleActionsAsync(new RegistryCaller(caller.UserId, caller.IsPlatformAdmin, null), name, ct);
        if (actions is null)
            return ImageProblem(StatusCodes.Status404NotFound, $"Image '{image}' was not found: no repository '{repository}' you may pull.");
        if (!actions.Contains(RegistryAction.Pull))
            return ImageProblem(StatusCodes.Status403Forbidden, $"Your role does not allow pulling '{repository}'.");
        return null;
    }

    private static ProblemHttpResult ImageProblem(int status, string message) =>
        TypedResults.Problem(new HttpValidationProblemDetails(new Dictionary<string, string[]> { ["image"] = [message] })
        {
            Status = status,
            Title = status == StatusCodes.Status404NotFound ? "Not found." : status == StatusCodes.Status403Forbidden ? "Forbidden." : "The request is not valid.",
            Detail = "image: " + message,
        });

    /// <summary>Starts the admission a change of the team's apps runs in; see <see cref="QuotaService.BeginAdmissionAsync"/>.</summary>
    public Task<Admission> BeginAsync(Guid teamId, CancellationToken ct, bool lockNow = true) => quotas.BeginAdmissionAsync(teamId, ct, lockNow);

    /// <summary>
    /// Applies a change made to <paramref name="app"/> (tracked by the context): records <paramref name="deploy"/>
    /// as a release and runs its image, bumps the generation when <see cref="RunSpec"/> moved from
    /// <paramref name="before"/> (null for a new app: it has no instances to replace) and stamps the change.
    /// </summary>
    /// <remarks>
    /// Every new generation is a rollout (<see cref="RolloutService"/>), a new app's first one too; <paramref name="rollbackOf"/>
    /// names the generation a rollback undoes.
    /// </remarks>
    public async Task<Release?> ApplyAsync(App app, string team, RunSpec? before, Deploy? deploy, string? userId, CancellationToken ct, int? rollbackOf = null)
    {
        Release? release = null;
        var now = clock.GetUtcNow().UtcDateTime;
        if (deploy is not null)
        {
            release = await releases.AddAsync(app, team, deploy.Image, deploy.Description, deploy.Commit, deploy.BuildNumber, userId, ct);
            app.Image = deploy.Image;
        }
        if (before is not { } b)
        {
            // A new app keeps its creation time and first generation; its first image rolls out like any other.
            if (app.Image is not null) await RolloutService.StartAsync(db, app, release?.Version, null, Describe(null, app, release), now, ct);
            return release;
        }
        if (b != RunSpec.Of(app))
        {
            app.Generation++;
            await RolloutService.StartAsync(db, app, release?.Version, rollbackOf, Describe(b, app, release), now, ct);
        }
        app.UpdatedAt = now;
        return release;
    }

    /// <summary>What a rollout changes, in words: <c>release v4 (acme/web/shop@sha256:…)</c>, <c>env, memory</c>.</summary>
    private static string Describe(RunSpec? before, App app, Release? release)
    {
        List<string> what = [];
        if (release is not null) what.Add($"release v{release.Version} ({release.Image})");
        else if (before is null || before.Value.Image != app.Image) what.Add($"image {app.Image}");
        if (before is { } b)
        {
            var now = RunSpec.Of(app);
            if (b.Env != now.Env) what.Add("env");
            if (b.MemoryMiB != now.MemoryMiB) what.Add($"memory {b.MemoryMiB} → {now.MemoryMiB} MiB");
            if (b.CpuMillicores != now.CpuMillicores) what.Add($"CPU {b.CpuMillicores}m → {now.CpuMillicores}m");
            if (b.Port != now.Port) what.Add($"port {b.Port} → {now.Port}");
        }
        return what.Count == 0 ? "no change" : string.Join(", ", what);
    }

    /// <summary>Saves and commits the admission, then lets the placement act on the app (best effort: its background pass retries).</summary>
    public async Task CommitAsync(Admission admission, Guid app, CancellationToken ct)
    {
        await db.SaveChangesAsync(ct);
        await admission.CommitAsync(ct);
        await placement.TryReconcileAsync([app], ct);
    }
}
