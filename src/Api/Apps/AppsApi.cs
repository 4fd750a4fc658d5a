using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Platform.Api.Access;
using Platform.Api.Infrastructure;
using Platform.Api.Quotas;
using Platform.Api.Deployments;
using Platform.Api.Registry;
using Platform.Api.Builds;
using Platform.Api.Scheduling;
using Platform.Contracts;
using Platform.Data;

namespace Platform.Api.Apps;

public static partial class AppsApi
{
    public const int DefaultInstances = 1;
    public const int DefaultMemoryMiB = 256;
    public const int DefaultCpuMillicores = 250;
    public const int DefaultPort = 8080;
    public const string Masked = "********";

    public static RouteGroupBuilder MapAppsApi(this RouteGroupBuilder api)
    {
        const string apps = "/teams/{team}/projects/{project}/apps";
        api.MapGet(apps, ListAsync).WithName("apps.list");
        api.MapPost(apps, CreateAsync).WithName("apps.create");
        api.MapGet(apps + "/{app}", GetAsync).WithName("apps.get");
        api.MapPatch(apps + "/{app}", UpdateAsync).WithName("apps.update");
        api.MapDelete(apps + "/{app}", DeleteAsync).WithName("apps.delete");
        api.MapGet(apps + "/{app}/instances", InstancesAsync).WithName("apps.instances");
        api.MapGet(apps + "/{app}/logs", AppLogs.StreamAsync).WithName("apps.logs");
        return api;
    }

    private static async Task<Results<Ok<Page<AppResponse>>, ProblemHttpResult>> ListAsync(
        string team, string project, int? limit, string? after, HttpContext http, AccessService access,
        PlatformDbContext db, IOptions<PlatformOptions> options, CancellationToken ct)
    {
        if (Paging.Check(limit) is { } bad) return bad;
        var s = await access.ProjectScopeAsync(team, project, Permission.AppRead, ct);
        if (s.Problem is { } p) return p;
        var scope = s.Value!;
        var query = db.Apps.AsNoTracking().Where(a => a.ProjectId == scope.Project.Id);
        if (after is not null) query = query.Where(a => string.Compare(a.Name, after) > 0);
        var take = Paging.Take(limit);
        var rows = await query.OrderBy(a => a.Name).Take(take + 1).ToListAsync(ct);
        var (items, next) = Paging.Split(rows, take, a => a.Name);
        var ids = items.Select(a => a.Id).ToList();
        var running = await db.Instances.AsNoTracking()
            .Where(i => ids.Contains(i.AppId) && i.State == InstanceStates.Ready && i.Generation == i.App!.Generation)
            .GroupBy(i => i.AppId).Select(g => new { g.Key, Count = g.Count() }).ToDictionaryAsync(g => g.Key, g => g.Count, ct);
        var rolling = (await db.Rollouts.AsNoTracking().Where(r => ids.Contains(r.AppId) && r.State == Rollouts.RolloutStates.Progressing)
            .Select(r => r.AppId).ToListAsync(ct)).ToHashSet();
        return TypedResults.Ok(new Page<AppResponse>(
            items.Select(a => ToResponse(a, scope, http, options.Value, running.GetValueOrDefault(a.Id), rolling.Contains(a.Id))).ToList(), next));
    }

    private static async Task<Results<Created<AppResponse>, ProblemHttpResult>> CreateAsync(
        string team, string project, CreateAppRequest body, HttpContext http, AccessService access, PlatformDbContext db,
        QuotaService quotas, DeploymentService deployments, WebhookSecrets secrets,
        IOptions<PlatformOptions> options, TimeProvider clock, CancellationToken ct)
    {
        var s = await access.ProjectScopeAsync(team, project, Permission.AppWrite, ct);
        if (s.Problem is { } p) return p;
        var scope = s.Value!;

        var errors = new Problems.Errors().Name("name", body.Name);
        if (!errors.Any && body.Name!.Length > Names.MaxAppNameLength(project, team))
            errors.Add("name", $"must be at most {Math.Max(0, Names.MaxAppNameLength(project, team))} characters in project '{project}' of team '{team}': " +
                $"the app's host name starts with the label '{{app}}-{project}-{team}', and a DNS label has at most {Names.MaxLabelLength}.");
        Validate(errors, body.Image, body.Instances, body.MemoryMiB, body.CpuMillicores, body.Port, body.Env, body.HealthCheckPath);
        if (!errors.Any && body.Image is not null && ImageResolver.Eligibility(body.Image, team) is { } imageProblem)
            errors.Add("image", imageProblem);
        ValidateSource(errors, body.SourceUrl, body.Branch, body.DockerfilePath, body.WebhookSecret, options.Value.Builds.AllowedSourceHosts);
        if (body.Image is not null && (body.SourceUrl ?? body.Branch ?? body.DockerfilePath) is not null)
            errors.Add("image", "an app runs an image or is built from source (sourceUrl, branch, dockerfilePath), not both.");
        if (body.WebhookSecret is not null && body.SourceUrl is null)
            errors.Add("webhookSecret", "is only used with sourceUrl (a repository hosted elsewhere).");
        var readiness = body.Readiness is null ? default : Probes.Resolve(body.Readiness, "readiness", liveness: false, errors);
        var liveness = body.Liveness is null ? default : Probes.Resolve(body.Liveness, "liveness", liveness: true, errors);
        errors.Range("stopGraceSeconds", body.StopGraceSeconds, 0, Probes.MaxStopGraceSeconds)
            .Range("progressDeadlineSeconds", body.ProgressDeadlineSeconds, 10, 3600);
        if (errors.Any) return errors.ToProblem();
        if (body.Image is not null && await deployments.MayRunAsync(access.Caller, body.Image, ct) is { } imageDenied) return imageDenied;

        var now = clock.GetUtcNow().UtcDateTime;
        var app = new App
        {
            ProjectId = scope.Project.Id,
            Name = body.Name!,
            Host = Names.HostLabel(body.Name!, project, team),
            Image = body.Image,
            FromSource = body.Image is null,
            Instances = body.Instances ?? DefaultInstances,
            MemoryMiB = body.MemoryMiB ?? DefaultMemoryMiB,
            CpuMillicores = body.CpuMillicores ?? DefaultCpuMillicores,
            Port = body.Port ?? DefaultPort,
            Env = body.Env?.Where(e => e.Value is not null).ToDictionary(e => e.Key, e => e.Value!) ?? [],
            HealthCheckPath = body.HealthCheckPath,
            ReadinessProbe = readiness.Spec,
            LivenessProbe = liveness.Spec,
            StopGraceSeconds = body.StopGraceSeconds ?? Probes.DefaultStopGraceSeconds,
            ProgressDeadlineSeconds = body.ProgressDeadlineSeconds ?? 120,
            HttpsRedirect = body.HttpsRedirect ?? true,
            Hsts = body.Hsts ?? false,
            SourceUrl = body.SourceUrl,
            Branch = body.Branch ?? "main",
            DockerfilePath = body.DockerfilePath ?? "Dockerfile",
            SourceSetBy = body.SourceUrl is null ? null : access.Caller.UserId,
            CreatedAt = now,
            UpdatedAt = now,
        };
        string? shownSecret = null;
        if (body.SourceUrl is not null)
        {
            shownSecret = body.WebhookSecret is null ? WebhookSecrets.New() : null;
            app.WebhookSecret = secrets.Protect(body.WebhookSecret ?? shownSecret!);
        }

        // Checked before the admission queue; a create racing for the same name meets the unique index.
        if (await db.Apps.AnyAsync(a => a.ProjectId == scope.Project.Id && a.Name == app.Name, ct))
            return Problems.Conflict("name", $"An app named '{app.Name}' exists in project '{project}'.");
        // Host names are platform-wide: "shop-prod" in acme/corp and "shop" in prod/acme-corp would both answer at
        // shop-prod-acme-corp. Which app holds it is not said: it may be another team's.
        if (await db.Apps.AnyAsync(a => a.Host == app.Host, ct))
            return Problems.Conflict("name", $"The host name '{app.Host}' is already another app's: choose another name.", "The host name is taken.");
        var footprint = AppFootprint.Of(app.Instances, app.MemoryMiB, app.CpuMillicores);
        await using var tx = await deployments.BeginAsync(scope.Access.Team.Id, ct, lockNow: false);
        if (!await quotas.TryReserveAsync(scope.Access.Team, scope.Project, footprint, ct))
        {
            await tx.RollbackAsync(ct);
            return Problems.QuotaExceeded(await quotas.AdmitAsync(scope.Access.Team, scope.Project, footprint, ct));
        }
        db.Apps.Add(app);
        await deployments.ApplyAsync(app, team, before: null, app.Image is null ? null : Deployed(app.Image), access.Caller.UserId, ct);
        await deployments.CommitAsync(tx, app.Id, ct);
        app.SchedulingMessage = await db.Apps.Where(x => x.Id == app.Id).Select(x => x.SchedulingMessage).FirstOrDefaultAsync(ct);
        return TypedResults.Created($"/api/v1/teams/{team}/projects/{project}/apps/{app.Name}",
            ToResponse(app, scope, http, options.Value) with { WebhookSecret = shownSecret });
    }

    private static async Task<Results<Ok<AppResponse>, ProblemHttpResult>> GetAsync(
        string team, string project, string app, HttpContext http, AccessService access, PlatformDbContext db,
        IOptions<PlatformOptions> options, CancellationToken ct)
    {
        var (a, scope, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        return TypedResults.Ok(ToResponse(a!, scope!, http, options.Value, await RunningAsync(db, a!, ct), await RollingOutAsync(db, a!, ct)));
    }

    private static async Task<Results<Ok<AppResponse>, ProblemHttpResult>> UpdateAsync(
        string team, string project, string app, UpdateAppRequest body, HttpContext http, AccessService access,
        PlatformDbContext db, QuotaService quotas, DeploymentService deployments, WebhookSecrets secrets,
        IOptions<PlatformOptions> options, CancellationToken ct)
    {
        var s = await access.ProjectScopeAsync(team, project, Permission.AppWrite, ct);
        if (s.Problem is { } p) return p;
        var scope = s.Value!;
        var errors = new Problems.Errors();
        Validate(errors, body.Image, body.Instances, body.MemoryMiB, body.CpuMillicores, body.Port, body.Env, body.HealthCheckPath);
        if (!errors.Any && body.Image is not null && ImageResolver.Eligibility(body.Image, team) is { } imageProblem)
            errors.Add("image", imageProblem);
        ValidateSource(errors, body.SourceUrl, body.Branch, body.DockerfilePath, body.WebhookSecret, options.Value.Builds.AllowedSourceHosts);
        var readiness = body.Readiness is null ? default : Probes.Resolve(body.Readiness, "readiness", liveness: false, errors);
        var liveness = body.Liveness is null ? default : Probes.Resolve(body.Liveness, "liveness", liveness: true, errors);
        errors.Range("stopGraceSeconds", body.StopGraceSeconds, 0, Probes.MaxStopGraceSeconds)
            .Range("progressDeadlineSeconds", body.ProgressDeadlineSeconds, 10, 3600);
        if (errors.Any) return errors.ToProblem();
        if (body.Image is not null && await deployments.MayRunAsync(access.Caller, body.Image, ct) is { } imageDenied) return imageDenied;

        await using var tx = await deployments.BeginAsync(scope.Access.Team.Id, ct);
        var a = await access.FindAppAsync(scope.Project, app, ct);
        if (a is null) return Problems.NotFound($"App '{app}'");

        var before = AppFootprint.Of(a.Instances, a.MemoryMiB, a.CpuMillicores);
        var after = AppFootprint.Of(body.Instances ?? a.Instances, body.MemoryMiB ?? a.MemoryMiB, body.CpuMillicores ?? a.CpuMillicores);
        if (!await quotas.TryReserveAsync(scope.Access.Team, scope.Project, after - before, ct))
        {
            await tx.RollbackAsync(ct);
            return Problems.QuotaExceeded(await quotas.AdmitAsync(scope.Access.Team, scope.Project, after - before, ct));
        }

        if (body.WebhookSecret is not null && (body.SourceUrl ?? a.SourceUrl) is null)
            return Problems.Validation("webhookSecret", "is only used with sourceUrl (a repository hosted elsewhere).");
        if ((body.SourceUrl ?? body.Branch ?? body.DockerfilePath) is not null && !a.FromSource)
            return Problems.Validation("sourceUrl", "this app runs an image: create an app without an image to build from source.");
        var running = RunSpec.Of(a);
        var deploy = body.Image is not null && body.Image != a.Image ? Deployed(body.Image) : null;
        string? shownSecret = null;
        if (body.SourceUrl is not null && body.SourceUrl != a.SourceUrl)
        {
            a.SourceUrl = body.SourceUrl;
            a.SourceSetBy = access.Caller.UserId;
            if (body.WebhookSecret is null && a.WebhookSecret is null) shownSecret = WebhookSecrets.New();
        }
        if (body.WebhookSecret is not null || shownSecret is not null)
        {
            a.WebhookSecret = secrets.Protect(body.WebhookSecret ?? shownSecret!);
            a.SourceSetBy = access.Caller.UserId;
        }
        a.Branch = body.Branch ?? a.Branch;
        a.DockerfilePath = body.DockerfilePath ?? a.DockerfilePath;
        a.Instances = body.Instances ?? a.Instances;
        a.MemoryMiB = body.MemoryMiB ?? a.MemoryMiB;
        a.CpuMillicores = body.CpuMillicores ?? a.CpuMillicores;
        a.Port = body.Port ?? a.Port;
        a.HealthCheckPath = body.HealthCheckPath ?? a.HealthCheckPath;
        // Probes and the grace period reach running instances at once, without a rollout.
        if (body.Readiness is not null) a.ReadinessProbe = readiness.Spec;
        if (body.Liveness is not null) a.LivenessProbe = liveness.Spec;
        a.StopGraceSeconds = body.StopGraceSeconds ?? a.StopGraceSeconds;
        a.ProgressDeadlineSeconds = body.ProgressDeadlineSeconds ?? a.ProgressDeadlineSeconds;
        a.HttpsRedirect = body.HttpsRedirect ?? a.HttpsRedirect;
        a.Hsts = body.Hsts ?? a.Hsts;
        if (body.Env is not null)
        {
            // JSON merge-patch: a null value removes the variable, any other value sets it.
            var env = new Dictionary<string, string>(a.Env);
            foreach (var (k, v) in body.Env)
                if (v is null) env.Remove(k); else env[k] = v;
            if (env.Count > Quantities.MaxEnvEntries)
                return Problems.Validation("env", $"must have at most {Quantities.MaxEnvEntries} variables.");
            a.Env = env;
        }
        // What a running instance is made of changed: a new generation replaces the instances.
        await deployments.ApplyAsync(a, team, running, deploy, access.Caller.UserId, ct);
        await deployments.CommitAsync(tx, a.Id, ct);
        a.SchedulingMessage = await db.Apps.Where(x => x.Id == a.Id).Select(x => x.SchedulingMessage).FirstOrDefaultAsync(ct);
        return TypedResults.Ok(ToResponse(a, scope, http, options.Value, await RunningAsync(db, a, ct), await RollingOutAsync(db, a, ct)) with { WebhookSecret = shownSecret });
    }

    /// <summary>An image set by hand (create or PATCH), as its release describes it.</summary>
    private static Deploy Deployed(string image) => new(image, $"Deployed image {image}");

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(
        string team, string project, string app, AccessService access, PlatformDbContext db, QuotaService quotas,
        AppRemoval removal, CancellationToken ct)
    {
        var s = await access.ProjectScopeAsync(team, project, Permission.AppWrite, ct);
        if (s.Problem is { } p) return p;
        var scope = s.Value!;
        AppRemoval.Plan plan;
        await using (var tx = await quotas.BeginAdmissionAsync(scope.Access.Team.Id, ct))
        {
            var a = await access.FindAppAsync(scope.Project, app, ct);
            if (a is null) return Problems.NotFound($"App '{app}'");
            // Its instances leave their nodes' desired state in this commit; its images stay in the project's registry.
            plan = await removal.PrepareAsync(db.Apps.Where(x => x.Id == a.Id), registry: null, ct);
            db.Apps.Remove(a);
            await db.SaveChangesAsync(ct);
            await quotas.ApplyAsync(scope.Access.Team.Id, scope.Project.Id,
                default(AppFootprint) - AppFootprint.Of(a.Instances, a.MemoryMiB, a.CpuMillicores), ct);
            await tx.CommitAsync(ct);
        }
        // Then its git repository (apps built from source), build logs and layer cache.
        await removal.FinishAsync(plan);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<Page<InstanceResponse>>, ProblemHttpResult>> InstancesAsync(
        string team, string project, string app, AccessService access, PlatformDbContext db, CancellationToken ct)
    {
        var (a, _, problem) = await access.AppAsync(team, project, app, Permission.AppRead, ct);
        if (problem is not null) return problem;
        var rows = await db.Instances.AsNoTracking().Where(i => i.AppId == a!.Id)
            .Select(i => new { i, Node = i.Node!.Name }).ToListAsync(ct);
        return TypedResults.Ok(new Page<InstanceResponse>(rows.OrderBy(r => r.i.CreatedAt).ThenBy(r => r.i.Id).Select(r => new InstanceResponse(
            r.i.Id.ToString("N"), r.Node, r.i.State, r.i.Restarts, r.i.ExitCode, r.i.Reason, r.i.Message,
            $"{r.i.ImageRepository}@{r.i.ImageDigest}", r.i.Generation, r.i.CreatedAt, r.i.StartedAt,
            r.i.UsedCpuMillicores, r.i.UsedMemoryBytes)).ToList(), null));
    }

    private static Task<int> RunningAsync(PlatformDbContext db, App a, CancellationToken ct) =>
        db.Instances.CountAsync(i => i.AppId == a.Id && i.State == InstanceStates.Ready && i.Generation == a.Generation, ct);

    private static Task<bool> RollingOutAsync(PlatformDbContext db, App a, CancellationToken ct) =>
        db.Rollouts.AnyAsync(r => r.AppId == a.Id && r.State == Rollouts.RolloutStates.Progressing, ct);

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*\\z")]
    private static partial Regex EnvName();

    // An image reference: [registry[:port]/]path[:tag][@digest], lower-case path components.
    [GeneratedRegex(@"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?\z")]
    private static partial Regex ImageReference();

    private static void Validate(Problems.Errors errors, string? image, int? instances, int? memoryMiB, int? cpu, int? port,
        Dictionary<string, string?>? env, string? healthCheckPath)
    {
        if (image is not null && (image.Length > 512 || !ImageReference().IsMatch(image)))
            errors.Add("image", "must be an image reference such as 'team/project/app:tag' or 'registry:5000/name@sha256:…' (at most 512 characters).");
        errors.Range("instances", instances, 0, Quantities.MaxInstances)
            .Range("memoryMiB", memoryMiB, Quantities.MinMemoryMiB, Quantities.MaxMemoryMiB)
            .Range("cpuMillicores", cpu, Quantities.MinCpuMillicores, Quantities.MaxCpuMillicores)
            .Range("port", port, Quantities.MinPort, Quantities.MaxPort);
        if (env is not null)
        {
            if (env.Count > Quantities.MaxEnvEntries)
                errors.Add("env", $"must have at most {Quantities.MaxEnvEntries} variables.");
            foreach (var (k, v) in env.Take(Quantities.MaxEnvEntries + 1))
            {
                if (k.Length > 256 || !EnvName().IsMatch(k))
                    errors.Add("env", $"'{Printable(k)}' is not a variable name (letters, digits and '_', not starting with a digit).");
                else if (k == "PORT")
                    errors.Add("env." + k, "is set by the platform from 'port'.");
                else if (v is { } value && (value.Length > Quantities.MaxEnvValueLength || value.Contains('\0')))
                    errors.Add("env." + k, $"must be at most {Quantities.MaxEnvValueLength} characters with no NUL.");
            }
        }
        if (healthCheckPath is not null) errors.Add("healthCheckPath", Probes.PathProblem(healthCheckPath));
    }

    [GeneratedRegex(@"^(?!/)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,255}(?<!/)(?<!\.lock)$")]
    private static partial Regex BranchName();

    [GeneratedRegex(@"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/@+-]{1,255}$")]
    private static partial Regex RelativePath();

    private static void ValidateSource(Problems.Errors errors, string? sourceUrl, string? branch, string? dockerfilePath, string? webhookSecret, IReadOnlyCollection<string> allowedHosts)
    {
        if (sourceUrl is not null && Builds.SourceUrls.SyntaxProblem(sourceUrl, allowedHosts) is { } problem)
            errors.Add("sourceUrl", problem);
        if (branch is not null && (!BranchName().IsMatch(branch) || branch.StartsWith('-')))
            errors.Add("branch", "must be a branch name such as 'main' or 'release/2.x' (letters, digits, '.', '_', '-', '/').");
        if (dockerfilePath is not null && !RelativePath().IsMatch(dockerfilePath))
            errors.Add("dockerfilePath", "must be a path inside the repository such as 'Dockerfile' or 'docker/web.Dockerfile' (no '..', not absolute).");
        if (webhookSecret is not null && (webhookSecret.Length is < 16 or > 256 || webhookSecret.Any(char.IsControl)))
            errors.Add("webhookSecret", "must be 16 to 256 characters without control characters.");
    }

    private static string Printable(string s)
    {
        var cut = s.Length > 40 ? s[..40] + "…" : s;
        return new string(cut.Select(c => char.IsControl(c) ? '?' : c).ToArray());
    }

    /// <summary>The app's address on the router: HTTPS once the router has a certificate for the app's host (the apps domain's wildcard).</summary>
    public static string UrlOf(string app, string project, string team, IServiceProvider services, PlatformOptions options)
    {
        // The router's bound address when it listens on a port picked at start (Ingress:Url with port 0).
        var router = services.GetService<Routing.Router>();
        var ingress = router?.Address is { } bound && new Uri(options.Ingress.Url).Port == 0 ? bound : new Uri(options.Ingress.Url);
        var appHost = Routing.RouteTable.HostOf(app, project, team, options.Ingress.Domain);
        if (router?.HttpsAddress is { } secure && services.GetService<Routing.TlsCertificates>()?.Has(appHost) == true)
            ingress = secure;
        return $"{ingress.Scheme}://{appHost}{(ingress.IsDefaultPort ? "" : ":" + ingress.Port)}";
    }

    private static AppResponse ToResponse(App a, ProjectScope scope, HttpContext http, PlatformOptions options, int running = 0, bool rollingOut = false)
    {
        var team = scope.Access.Team.Name;
        var project = scope.Project.Name;
        var url = UrlOf(a.Name, project, team, http.RequestServices, options);
        // The Api's public address when the operator set one (behind a TLS load balancer the request says http).
        var apiUrl = options.PublicUrl?.TrimEnd('/') ?? $"{http.Request.Scheme}://{http.Request.Host}";
        var gitUrl = a.HasRepository ? $"{apiUrl}/git/{team}/{project}/{a.Name}.git" : null;
        var env = scope.SeesSecrets ? a.Env : a.Env.ToDictionary(e => e.Key, _ => Masked);
        var webhookUrl = a.SourceUrl is null ? null : $"{apiUrl}/hooks/{team}/{project}/{a.Name}";
        return new AppResponse(a.Name, project, team, a.Image, a.Instances, a.MemoryMiB, a.CpuMillicores, a.Port,
            env, a.HealthCheckPath, url, gitUrl, a.CreatedAt, a.UpdatedAt,
            new AppStatus(running, a.Image is null ? 0 : a.Instances,
                a.SchedulingMessage ?? (rollingOut && running < a.Instances ? $"rolling out {running}/{a.Instances}" : null)),
            a.SourceUrl is null ? null : Builds.SourceUrls.Redact(a.SourceUrl), a.FromSource ? a.Branch : null,
            a.FromSource ? a.DockerfilePath : null, webhookUrl, null, Probes.Readiness(a), Probes.Liveness(a), a.StopGraceSeconds, a.ProgressDeadlineSeconds,
            a.HttpsRedirect, a.Hsts);
    }
}
