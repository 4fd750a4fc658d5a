using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Platform.Contracts;
using Platform.NodeAgent.Images;
using Platform.NodeAgent.Runtime;

namespace Platform.NodeAgent.Instances;

/// <summary>What the agent keeps on disk per instance ({bundle}/instance.json), enough to adopt and tear it down after a restart.</summary>
public sealed record InstanceRecord(DesiredInstance Desired, int Slot, int HostPort, DateTime? StartedAt, IReadOnlyList<string>? Layers = null);

/// <summary>Where the agent keeps things and how it runs them (from <see cref="AgentOptions"/>).</summary>
public sealed record RuntimeSettings(
    string DataDir, string CgroupParent, string BridgePrefix, string CniBin, int PortRangeStart, int PortRangeSize,
    TimeSpan StopGrace, int MaxParallelStarts, long LogMaxBytes, int PidsLimit, int SubnetBase = 88, string Registry = "platform")
{
    public string InstancesDir => Path.Combine(DataDir, "instances");
}

/// <summary>
/// The node's reconcile loop. Desired instances (the Api's snapshot) against observed ones (bundles on
/// disk and runc's state) by set difference: start what is desired and missing, stop and tear down what
/// runs and is no longer desired, restart what exited with exponential back-off (1 s doubling to 5 min;
/// CrashLoop after 3 quick failures in a row). Nothing is removed before the first desired state
/// arrives, and a restarted agent adopts running containers: their shims kept running, their exit
/// codes land in the bundle whether or not the agent is there.
/// </summary>
public sealed partial class InstanceManager
{
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan QuickFailure = TimeSpan.FromSeconds(10);

    private sealed class Tracked(InstanceRecord record, string bundle)
    {
        public InstanceRecord Record { get; set; } = record;
        public string Bundle { get; } = bundle;
        public string State { get; set; } = InstanceStates.Pending;
        public int Restarts { get; set; }
        public int QuickFailures { get; set; }
        public int? ExitCode { get; set; }
        public string? Reason { get; set; }
        public string? Message { get; set; }
        public DateTime NextAttempt { get; set; }
        public bool Busy { get; set; }
        public long CpuMillicores { get; set; }
        public long MemoryBytes { get; set; }
        public (long Nanos, long Ticks)? LastCpu { get; set; }
        public Guid Id => Record.Desired.Id;
        public string ContainerId => Id.ToString("N");
    }

    private readonly RuntimeSettings _settings;
    private readonly Runc _runc;
    private readonly Rootfs _rootfs;
    private readonly Network _network;
    private readonly ProjectSlots _slots;
    private readonly Func<ImagePuller> _puller;
    private readonly JsonObject? _seccomp;
    private readonly TimeProvider _clock;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<Guid, Tracked> _instances = new();
    private readonly ConcurrentDictionary<string, Lazy<Task<PulledImage>>> _images = new();
    private readonly SemaphoreSlim _starts;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Lock _ports = new();
    private volatile DesiredState? _desired;

    public InstanceManager(RuntimeSettings settings, Func<ImagePuller> puller, TimeProvider clock, ILogger log)
    {
        _settings = settings;
        Directory.CreateDirectory(settings.InstancesDir);
        _runc = new Runc(Path.Combine(settings.DataDir, "runc"));
        var layers = new LayerStore(Path.Combine(settings.DataDir, "layers"));
        _rootfs = new Rootfs(layers, Path.Combine(settings.DataDir, "rootfs"));
        Directory.CreateDirectory(Path.Combine(settings.DataDir, "ipam"));
        _network = new Network(settings.CniBin, Path.Combine(settings.DataDir, "ipam"), settings.BridgePrefix);
        _slots = new ProjectSlots(Path.Combine(settings.DataDir, "projects.json"), settings.BridgePrefix, settings.SubnetBase);
        _puller = puller;
        _seccomp = File.Exists(Seccomp.DefaultProfilePath)
            ? Seccomp.ToOci(JsonNode.Parse(File.ReadAllText(Seccomp.DefaultProfilePath))!.AsObject(), "amd64", RuntimeSpec.Capabilities.ToHashSet())
            : null;
        _starts = new SemaphoreSlim(Math.Max(1, settings.MaxParallelStarts));
        _clock = clock;
        _log = log;
    }

    /// <summary>Raised (from any thread) when an instance's reported state may have changed.</summary>
    public event Action? Changed;

    public long? DesiredRevision => _desired?.Revision;

    public void SetDesired(DesiredState state)
    {
        _desired = state;
        _wake.Release();
    }

    public string CgroupsPathOf(Guid id) => $"{_settings.CgroupParent}/{id:N}";

    public string? BundleOf(Guid id) => _instances.TryGetValue(id, out var t) ? t.Bundle : null;

    /// <summary>Adopts what the previous run of the agent left: bundles with their records, and runc's containers.</summary>
    public async Task AdoptAsync(CancellationToken ct)
    {
        var containers = (await _runc.ListAsync(ct)).ToDictionary(c => c.Id);
        foreach (var dir in Directory.GetDirectories(_settings.InstancesDir))
        {
            var file = Path.Combine(dir, "instance.json");
            if (!File.Exists(file)) continue;
            InstanceRecord? record;
            try { record = JsonSerializer.Deserialize<InstanceRecord>(await File.ReadAllTextAsync(file, ct)); }
            catch (JsonException) { record = null; }
            if (record is null) continue;
            var t = new Tracked(record, dir);
            _instances[record.Desired.Id] = t;
            if (containers.TryGetValue(t.ContainerId, out var c) && c.Status == "running")
            {
                t.State = InstanceStates.Running;
                _runc.WatchEvents(t.ContainerId, dir);
                LogAdopted(_log, t.ContainerId, c.Pid);
            }
            else if (Runc.Exit(dir) is { } exit)
            {
                Exited(t, exit);
            }
            else
            {
                // Neither running nor a recorded exit: it was being set up when the agent stopped.
                t.State = InstanceStates.Failed;
                t.Message = "the agent stopped while the instance was starting";
                t.NextAttempt = _clock.GetUtcNow().UtcDateTime;
            }
        }
    }

    /// <summary>The loop: every wake-up (new desired state) and at least every second.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var lastSample = DateTime.MinValue;
        var lastCollect = _clock.GetUtcNow().UtcDateTime;   // not right after a start: adopted records first
        while (!ct.IsCancellationRequested)
        {
            try
            {
                Reconcile();
                var now = _clock.GetUtcNow().UtcDateTime;
                if (now - lastSample >= TimeSpan.FromSeconds(2))
                {
                    lastSample = now;
                    Sample();
                    RotateLogs();
                }
                if (now - lastCollect >= CollectEvery && _desired is not null)
                {
                    lastCollect = now;
                    CollectImages(now);
                }
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
            {
                LogLoopFailed(_log, e.Message);
            }
            await _wake.WaitAsync(TimeSpan.FromSeconds(1), ct).ContinueWith(_ => { }, CancellationToken.None);
        }
    }

    private void Reconcile()
    {
        var desired = _desired;
        if (desired is null) return;   // never tear anything down before the Api has said what it wants
        var now = _clock.GetUtcNow().UtcDateTime;
        var wanted = desired.Instances.ToDictionary(i => i.Id);

        foreach (var (id, d) in wanted)
        {
            if (_instances.ContainsKey(id)) continue;
            var t = new Tracked(new InstanceRecord(d, _slots.SlotOf(d.ProjectId), 0, null), Path.Combine(_settings.InstancesDir, id.ToString("N")));
            if (_instances.TryAdd(id, t)) Launch(t, StartAsync);
        }
        foreach (var t in _instances.Values)
        {
            if (t.Busy) continue;
            if (!wanted.ContainsKey(t.Id))
            {
                Launch(t, RemoveAsync);
                continue;
            }
            if (t.State == InstanceStates.Running && Runc.Exit(t.Bundle) is { } exit)
            {
                Exited(t, exit);
                Changed?.Invoke();
            }
            if (t.State is InstanceStates.Restarting or InstanceStates.CrashLoop or InstanceStates.Failed && now >= t.NextAttempt)
                Launch(t, RestartAsync);
        }
    }

    private void Launch(Tracked t, Func<Tracked, CancellationToken, Task> work)
    {
        t.Busy = true;
        _ = Task.Run(async () =>
        {
            try
            {
                await work(t, CancellationToken.None);
            }
            catch (Exception e)
            {
                Failed(t, e);
            }
            finally
            {
                t.Busy = false;
                Changed?.Invoke();
                _wake.Release();
            }
        });
    }

    private TimeSpan Backoff(int failures) =>
        TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, Math.Max(0, failures - 1))));

    private void Exited(Tracked t, ExitInfo exit)
    {
        var now = _clock.GetUtcNow().UtcDateTime;
        var ran = t.Record.StartedAt is { } started ? now - started : TimeSpan.Zero;
        t.QuickFailures = ran < QuickFailure ? t.QuickFailures + 1 : 1;
        t.Restarts++;
        t.ExitCode = exit.ExitCode;
        t.Reason = exit.Reason;
        t.Message = null;
        t.State = t.QuickFailures >= 3 ? InstanceStates.CrashLoop : InstanceStates.Restarting;
        t.NextAttempt = now + Backoff(t.QuickFailures);
        t.CpuMillicores = 0;
        t.MemoryBytes = 0;
        LogExited(_log, t.ContainerId, exit.ExitCode, exit.Reason, t.NextAttempt - now);
    }

    private void Failed(Tracked t, Exception e)
    {
        t.QuickFailures++;
        t.State = t.QuickFailures >= 3 ? InstanceStates.CrashLoop : InstanceStates.Failed;
        t.Reason = "StartFailed";
        t.Message = e.Message.Length > 1000 ? e.Message[..1000] : e.Message;
        t.NextAttempt = _clock.GetUtcNow().UtcDateTime + Backoff(t.QuickFailures);
        LogStartFailed(_log, t.ContainerId, e.Message);
    }

    private Task<PulledImage> PullAsync(string image, CancellationToken ct)
    {
        var lazy = _images.GetOrAdd(image, i => new Lazy<Task<PulledImage>>(() => _puller().PullAsync($"{_settings.Registry}/{i}", ct)));
        var task = lazy.Value;
        _ = task.ContinueWith(_ => _images.TryRemove(new KeyValuePair<string, Lazy<Task<PulledImage>>>(image, lazy)),
            CancellationToken.None, TaskContinuationOptions.NotOnRanToCompletion, TaskScheduler.Default);
        return task;
    }

    private async Task StartAsync(Tracked t, CancellationToken ct)
    {
        await _starts.WaitAsync(ct);
        try
        {
            t.State = InstanceStates.Starting;
            Changed?.Invoke();
            var d = t.Record.Desired;
            var image = await PullAsync(d.Image, ct);
            var args = image.Entrypoint.Concat(image.Cmd).ToList();
            if (args.Count == 0) throw new InvalidOperationException("the image has no Entrypoint or Cmd: nothing to run");
            var hostStart = ProjectSlots.HostIdStart(t.Record.Slot);

            Directory.CreateDirectory(t.Bundle);
            File.SetUnixFileMode(t.Bundle, (UnixFileMode)0b111_001_001);   // 0711: the mapped root traverses it
            var record = t.Record with { HostPort = AllocatePort(t.Id), Layers = image.Layers };
            t.Record = record;
            await SaveAsync(t, ct);   // before anything is set up, so a crash mid-way can still be torn down
            var rootfs = await _rootfs.MountAsync(t.Bundle, image.Layers, hostStart, ct);
            var attachment = await _network.AttachAsync(t.ContainerId, _slots.NetworkOf(record.Slot), record.HostPort, d.Port, ct);
            var (uid, gid) = User(image.User, rootfs);
            var env = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var e in image.Env)
            {
                var eq = e.IndexOf('=');
                if (eq > 0) env[e[..eq]] = e[(eq + 1)..];
            }
            foreach (var (k, v) in d.Env) env[k] = v;
            env["PORT"] = d.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            env.TryAdd("HOSTNAME", d.App);
            var spec = RuntimeSpec.Build(new InstanceSpec
            {
                Id = t.ContainerId, RootfsPath = rootfs, Args = args, Env = env.Select(e => $"{e.Key}={e.Value}").ToList(),
                Cwd = image.WorkingDir, Uid = uid, Gid = gid, Hostname = d.App, HostIdStart = hostStart, IdRangeSize = ProjectSlots.IdRangeSize,
                MemoryBytes = d.MemoryMiB * 1024L * 1024L, CpuMillicores = d.CpuMillicores, PidsLimit = _settings.PidsLimit,
                NetworkNamespacePath = attachment.NamespacePath, CgroupsPath = CgroupsPathOf(t.Id),
            }, _seccomp);
            await File.WriteAllTextAsync(Path.Combine(t.Bundle, "config.json"), spec.ToJsonString(), ct);
            await RunContainerAsync(t, ct);
        }
        catch
        {
            // A start that failed half-way leaves nothing behind; the retry starts from scratch.
            await TeardownAsync(t, keepRecord: true, CancellationToken.None);
            throw;
        }
        finally
        {
            _starts.Release();
        }
    }

    private async Task RunContainerAsync(Tracked t, CancellationToken ct)
    {
        t.Record = t.Record with { StartedAt = _clock.GetUtcNow().UtcDateTime };
        await SaveAsync(t, ct);
        await _runc.StartAsync(t.ContainerId, t.Bundle, ct);
        if (Runc.Exit(t.Bundle) is { } exit)
        {
            Exited(t, exit);
            return;
        }
        t.State = InstanceStates.Running;
        t.ExitCode = null;
        t.Message = null;
        if (t.Restarts == 0) t.Reason = null;
        LogStarted(_log, t.ContainerId, t.Record.Desired.App, t.Record.HostPort);
    }

    /// <summary>A container that exited restarts in its bundle (same root file system, network and port); a failed start starts over.</summary>
    private async Task RestartAsync(Tracked t, CancellationToken ct)
    {
        var ready = File.Exists(Path.Combine(t.Bundle, "config.json")) && await Rootfs.IsMountedAsync(Path.Combine(t.Bundle, "rootfs"), ct)
            && File.Exists("/var/run/netns/plat-" + t.ContainerId);
        if (!ready)
        {
            await StartAsync(t, ct);
            return;
        }
        if (await _runc.StateAsync(t.ContainerId, ct) is not null)
            await _runc.DeleteAsync(t.ContainerId, ct);
        await RunContainerAsync(t, ct);
    }

    private async Task RemoveAsync(Tracked t, CancellationToken ct)
    {
        t.State = InstanceStates.Pending;
        await TeardownAsync(t, keepRecord: false, ct);
        _instances.TryRemove(t.Id, out _);
        LogRemoved(_log, t.ContainerId);
    }

    /// <summary>SIGTERM, grace, SIGKILL; then the network (CNI DEL while the name-space exists), the overlay, the bundle.</summary>
    private async Task TeardownAsync(Tracked t, bool keepRecord, CancellationToken ct)
    {
        if (await _runc.StateAsync(t.ContainerId, ct) is not null)
            await _runc.StopAsync(t.ContainerId, _settings.StopGrace, ct);
        // The shim writes the exit code once runc returns; give it a moment so nothing writes into a deleted bundle.
        for (var i = 0; i < 40 && Directory.Exists(t.Bundle) && !File.Exists(Path.Combine(t.Bundle, "exit-code")) && File.Exists(Path.Combine(t.Bundle, "config.json")); i++)
            await Task.Delay(25, ct);
        if (t.Record.HostPort > 0)
            await _network.DetachAsync(t.ContainerId, _slots.NetworkOf(t.Record.Slot), t.Record.HostPort, t.Record.Desired.Port, ct);
        // The project's last instance here: its bridge goes too (a later one recreates it).
        if (!keepRecord && !_instances.Values.Any(o => o.Id != t.Id && o.Record.Slot == t.Record.Slot))
            await _network.RemoveBridgeAsync(_slots.NetworkOf(t.Record.Slot), ct);
        await _rootfs.UnmountAsync(t.Bundle, ct);
        if (!Directory.Exists(t.Bundle)) return;
        if (keepRecord)
        {
            foreach (var entry in Directory.GetFileSystemEntries(t.Bundle))
                if (Path.GetFileName(entry) is not ("instance.json" or "output.log" or "output.log.1"))
                {
                    if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
                    else File.Delete(entry);
                }
            t.Record = t.Record with { HostPort = 0 };
            await SaveAsync(t, ct);
        }
        else
        {
            Directory.Delete(t.Bundle, recursive: true);
        }
    }

    private static async Task SaveAsync(Tracked t, CancellationToken ct)
    {
        var file = Path.Combine(t.Bundle, "instance.json");
        await File.WriteAllTextAsync(file + ".tmp", JsonSerializer.Serialize(t.Record), ct);
        File.Move(file + ".tmp", file, overwrite: true);
    }

    /// <summary>A free host port in the agent's range: not held by another instance and bindable right now.</summary>
    private int AllocatePort(Guid id)
    {
        lock (_ports)
        {
            var taken = _instances.Values.Where(t => t.Id != id).Select(t => t.Record.HostPort).ToHashSet();
            var offset = Random.Shared.Next(_settings.PortRangeSize);
            for (var n = 0; n < _settings.PortRangeSize; n++)
            {
                var port = _settings.PortRangeStart + (offset + n) % _settings.PortRangeSize;
                if (taken.Contains(port)) continue;
                try
                {
                    using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    probe.Bind(new IPEndPoint(IPAddress.Any, port));
                }
                catch (SocketException)
                {
                    continue;
                }
                // Reserve it at once, before the caller saves the record.
                if (_instances.TryGetValue(id, out var me)) me.Record = me.Record with { HostPort = port };
                return port;
            }
            throw new InvalidOperationException("no free host port in the agent's range");
        }
    }

    /// <summary>The image's User as numeric ids: "", "uid", "uid:gid", or a name from the image's own /etc/passwd.</summary>
    private static (uint Uid, uint Gid) User(string user, string rootfs)
    {
        if (string.IsNullOrEmpty(user)) return (0, 0);
        var parts = user.Split(':', 2);
        uint? Lookup(string name, string file, int idField)
        {
            if (uint.TryParse(name, out var n)) return n;
            var path = Path.Combine(rootfs, "etc", file);
            // The image's own file only: never follow a link that could lead out of the root.
            if (!File.Exists(path) || new FileInfo(path).LinkTarget is not null || new FileInfo(Path.Combine(rootfs, "etc")).LinkTarget is not null) return null;
            foreach (var line in File.ReadLines(path).Take(10_000))
            {
                var f = line.Split(':');
                if (f.Length > idField && f[0] == name && uint.TryParse(f[idField], out var id)) return id;
            }
            return null;
        }
        var uid = Lookup(parts[0], "passwd", 2) ?? throw new InvalidOperationException($"the image's user '{parts[0]}' is not in its /etc/passwd");
        uint gid;
        if (parts.Length == 2) gid = Lookup(parts[1], "group", 2) ?? throw new InvalidOperationException($"the image's group '{parts[1]}' is not in its /etc/group");
        else if (uint.TryParse(parts[0], out _)) gid = uid;
        else
        {
            var line = File.ReadLines(Path.Combine(rootfs, "etc", "passwd")).Select(l => l.Split(':')).FirstOrDefault(f => f.Length > 3 && f[0] == parts[0]);
            gid = line is not null && uint.TryParse(line[3], out var g) ? g : uid;
        }
        if (uid >= ProjectSlots.IdRangeSize || gid >= ProjectSlots.IdRangeSize)
            throw new InvalidOperationException($"the image's user {uid}:{gid} is outside the container's id range (0–{ProjectSlots.IdRangeSize - 1})");
        return (uid, gid);
    }

    /// <summary>How often unused images are collected, and how long an unused layer is kept (a redeploy soon after reuses it).</summary>
    public static readonly TimeSpan CollectEvery = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan UnusedGrace = TimeSpan.FromMinutes(10);
    private readonly Dictionary<string, DateTime> _unusedSince = [];

    /// <summary>
    /// Deletes unpacked layers and their id-shifted copies that no instance on this node uses and that
    /// have been seen unused for <see cref="UnusedGrace"/> (by this process: after an agent restart the
    /// grace starts again). Never while a start
    /// is in flight (it may be about to use one), never before the first desired state.
    /// </summary>
    public int CollectImages(DateTime now)
    {
        if (_instances.Values.Any(t => t.Busy)) return 0;
        var used = _instances.Values.SelectMany(t => t.Record.Layers ?? []).Select(d => d.Replace("sha256:", "")).ToHashSet();
        if (_instances.Values.Any(t => t.Record.Layers is null && t.State != InstanceStates.Failed))
            return 0;   // a record from before layers were recorded: cannot tell what it uses
        var removed = 0;
        var layerRoot = Path.Combine(_settings.DataDir, "layers", "sha256");
        var shiftedRoot = Path.Combine(_settings.DataDir, "rootfs", "shifted");
        var candidates = (Directory.Exists(layerRoot) ? Directory.GetDirectories(layerRoot) : [])
            .Concat(Directory.Exists(shiftedRoot) ? Directory.GetDirectories(shiftedRoot).SelectMany(Directory.GetDirectories) : []);
        foreach (var dir in candidates)
        {
            var hex = Path.GetFileName(dir);
            if (hex.Contains('.')) continue;   // a folder being made (…tmp-…)
            if (used.Contains(hex) || !_unusedSince.TryGetValue(dir, out var since))
            {
                if (used.Contains(hex)) _unusedSince.Remove(dir);
                else _unusedSince[dir] = now;
                continue;
            }
            if (now - since < UnusedGrace) continue;
            _unusedSince.Remove(dir);
            try
            {
                Directory.Delete(dir, recursive: true);
                removed++;
            }
            catch (IOException e)
            {
                LogLoopFailed(_log, e.Message);
            }
        }
        if (removed > 0)
        {
            foreach (var (image, _) in _images) _images.TryRemove(image, out _);   // pulled again (and unpacked) when next needed
            LogCollected(_log, removed);
        }
        return removed;
    }

    /// <summary>CPU (millicores over the last interval) and memory of every running instance, from its cgroup.</summary>
    private void Sample()
    {
        var now = _clock.GetUtcNow().UtcTicks;
        foreach (var t in _instances.Values.Where(t => t.State == InstanceStates.Running))
        {
            if (CgroupStats.Read(CgroupsPathOf(t.Id)) is not { } s) continue;
            if (t.LastCpu is { } last && now > last.Ticks)
                t.CpuMillicores = Math.Max(0, (s.CpuNanos - last.Nanos) * 1000 / ((now - last.Ticks) * 100));
            t.LastCpu = (s.CpuNanos, now);
            t.MemoryBytes = s.MemoryBytes;
        }
    }

    /// <summary>
    /// output.log past its limit is copied to output.log.1 and truncated in place (the shim appends with
    /// O_APPEND, so it continues at the new end); a line written between copy and truncate can be lost.
    /// </summary>
    private void RotateLogs()
    {
        foreach (var t in _instances.Values)
        {
            var log = Path.Combine(t.Bundle, "output.log");
            try
            {
                if (!File.Exists(log) || new FileInfo(log).Length <= _settings.LogMaxBytes) continue;
                File.Copy(log, log + ".1", overwrite: true);
                using var f = new FileStream(log, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
                f.SetLength(0);
            }
            catch (IOException e)
            {
                LogLoopFailed(_log, e.Message);
            }
        }
    }

    public IReadOnlyList<InstanceReport> Reports() => _instances.Values
        .Select(t => new InstanceReport(t.Id, t.State, t.Restarts, t.ExitCode, t.Reason, t.Message,
            t.Record.HostPort > 0 ? t.Record.HostPort : null, t.State == InstanceStates.Running ? t.Record.StartedAt : null,
            t.CpuMillicores, t.MemoryBytes))
        .OrderBy(r => r.Id).ToList();

    public (long CpuMillicores, long MemoryMiB, int Running) Usage()
    {
        var running = _instances.Values.Where(t => t.State == InstanceStates.Running).ToList();
        return (running.Sum(t => t.CpuMillicores), running.Sum(t => t.MemoryBytes) / (1024 * 1024), running.Count);
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Adopted running container {Id} (pid {Pid})")]
    private static partial void LogAdopted(ILogger logger, string id, int pid);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Started {Id} of app {App} on host port {Port}")]
    private static partial void LogStarted(ILogger logger, string id, string app, int port);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "Instance {Id} exited with {ExitCode} ({Reason}); restarting in {Delay}")]
    private static partial void LogExited(ILogger logger, string id, int exitCode, string reason, TimeSpan delay);

    [LoggerMessage(EventId = 23, Level = LogLevel.Warning, Message = "Instance {Id} could not start: {Reason}")]
    private static partial void LogStartFailed(ILogger logger, string id, string reason);

    [LoggerMessage(EventId = 24, Level = LogLevel.Information, Message = "Stopped and removed {Id}")]
    private static partial void LogRemoved(ILogger logger, string id);

    [LoggerMessage(EventId = 26, Level = LogLevel.Information, Message = "Collected {Count} unused layer folder(s)")]
    private static partial void LogCollected(ILogger logger, int count);

    [LoggerMessage(EventId = 25, Level = LogLevel.Warning, Message = "Reconcile step failed: {Reason}")]
    private static partial void LogLoopFailed(ILogger logger, string reason);
}
