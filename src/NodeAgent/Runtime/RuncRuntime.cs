using System.Net;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Platform.Contracts;
using Platform.Host.Files;
using Platform.Host.Linux;
using Platform.NodeAgent.Images;
using Platform.NodeAgent.Instances;

namespace Platform.NodeAgent.Runtime;

/// <summary>Where the agent keeps things and how it runs them (from <see cref="AgentOptions"/>).</summary>
public sealed record RuntimeSettings(
    AgentLayout Layout, string CgroupParent, string BridgePrefix, string CniBin, int PortRangeStart, int PortRangeSize,
    TimeSpan StopGrace, int MaxParallelStarts, long LogMaxBytes, int PidsLimit, int SubnetBase = 88, string Registry = "platform",
    IReadOnlyList<string>? AllowedPrivateRanges = null, string SeccompProfile = Seccomp.DefaultProfilePath);

/// <summary>
/// The real <see cref="IContainerRuntime"/>: images pulled from the platform registry and unpacked into
/// the layer store, an overlay root per instance over id-shifted layers, a CNI network per project, and
/// runc under a shim that outlives the agent. Each instance has a bundle folder holding its record
/// (<c>instance.json</c>), spec, root, logs and exit code; a restarted agent reads them back.
/// </summary>
public sealed partial class RuncRuntime : IContainerRuntime
{
    private sealed class Entry(InstanceRecord record, string bundle)
    {
        public InstanceRecord Record { get; set; } = record;
        public string Bundle { get; } = bundle;
        public string ContainerId => Record.Desired.Id.ToString("N");
    }

    private readonly RuntimeSettings _settings;
    private readonly AgentLayout _layout;
    private readonly Runc _runc;
    private readonly Rootfs _rootfs;
    private readonly Network _network;
    private readonly ProjectSlots _slots;
    private readonly HostPorts _ports;
    private readonly Func<ImagePuller> _puller;
    private readonly JsonObject _seccomp;
    private readonly TimeProvider _clock;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<Guid, Entry> _entries = new();
    private readonly ConcurrentDictionary<string, Lazy<Task<PulledImage>>> _images = new();
    private readonly SemaphoreSlim _starts;
    private readonly ImageCollector _collector;
    private readonly LogRotator _rotator;
    private readonly ExitWatcher _exits;
    private readonly ConcurrentDictionary<int, SemaphoreSlim> _slotLocks = new();
    // Starts and image collection exclude each other: a start may be about to mount a layer the collector would delete.
    private readonly Lock _gate = new();
    private int _inFlight;
    private TaskCompletionSource? _collecting;

    public RuncRuntime(RuntimeSettings settings, Func<ImagePuller> puller, TimeProvider clock, ILogger log)
    {
        _settings = settings;
        _layout = settings.Layout;
        Directory.CreateDirectory(_layout.Instances);
        Directory.CreateDirectory(_layout.Ipam);
        _runc = new Runc(_layout.RuncState, clock);
        _rootfs = new Rootfs(new LayerStore(_layout.Layers), _layout.Rootfs);
        _network = new Network(settings.CniBin, _layout.Ipam, settings.BridgePrefix, settings.AllowedPrivateRanges);
        _slots = new ProjectSlots(_layout.ProjectSlots, settings.BridgePrefix, settings.SubnetBase);
        _ports = new HostPorts(settings.PortRangeStart, settings.PortRangeSize);
        _puller = puller;
        _seccomp = Seccomp.Load(settings.SeccompProfile);   // throws on a broken profile: the agent does not start
        _starts = new SemaphoreSlim(Math.Max(1, settings.MaxParallelStarts));
        _collector = new ImageCollector(_layout, log);
        _rotator = new LogRotator(settings.LogMaxBytes, log);
        _exits = new ExitWatcher(clock);
        _clock = clock;
        _log = log;
    }

    public string CgroupsPathOf(Guid id) => $"{_settings.CgroupParent}/{id:N}";

    public async Task<IReadOnlyList<RecoveredInstance>> RecoverAsync(CancellationToken ct)
    {
        await _network.Firewall.EnsureAsync(ct);   // at start: the containers adopted below are held by it too
        var containers = (await _runc.ListAsync(ct)).ToDictionary(c => c.Id);
        var found = new List<RecoveredInstance>();
        foreach (var dir in Directory.GetDirectories(_layout.Instances))
        {
            var file = Path.Combine(dir, "instance.json");
            if (!File.Exists(file)) continue;
            InstanceRecord? record;
            try { record = JsonSerializer.Deserialize<InstanceRecord>(await File.ReadAllTextAsync(file, ct)); }
            catch (JsonException) { record = null; }
            if (record is null) continue;
            var e = new Entry(record, dir);
            _entries[record.Desired.Id] = e;
            _slots.Acquire(record.Desired.ProjectId, record.Desired.Id, record.Slot);
            if (record.HostPort > 0) _ports.Reserve(record.HostPort);
            if (containers.TryGetValue(e.ContainerId, out var c) && c.Status == "running")
            {
                LogAdopted(_log, e.ContainerId, c.Pid);
                found.Add(new RecoveredInstance(record.Desired, RecoveredState.Running, null, record.HostPort, record.StartedAt));
            }
            else if (Runc.Exit(dir) is { } exit)
                found.Add(new RecoveredInstance(record.Desired, RecoveredState.Exited, exit, record.HostPort, record.StartedAt));
            else
            {
                // It was being set up (or its teardown failed): what was made goes, so the next start begins from scratch.
                try { await TeardownAsync(e, keepRecord: true, ct); }
                catch (Exception x) when (x is InvalidOperationException or IOException or TimeoutException) { LogTeardownFailed(_log, e.ContainerId, x.Message); }
                found.Add(new RecoveredInstance(record.Desired, RecoveredState.Interrupted, null, 0, null));
            }
        }
        _slots.ReleaseUnheld();
        return found;
    }

    public async Task<StartedContainer> StartAsync(DesiredInstance desired, CancellationToken ct)
    {
        var entry = _entries.GetOrAdd(desired.Id, id => new Entry(
            new InstanceRecord(desired, _slots.Acquire(desired.ProjectId, id), 0, null), _layout.Bundle(id)));
        if (entry.Record.Desired != desired) entry.Record = entry.Record with { Desired = desired };
        await EnterStartAsync(ct);
        try
        {
            await _starts.WaitAsync(ct);
            try
            {
                if (!await PreparedAsync(entry, ct))
                    await PrepareAsync(entry, ct);
                entry.Record = entry.Record with { StartedAt = _clock.GetUtcNow().UtcDateTime };
                await SaveAsync(entry, ct);
                await _runc.StartAsync(entry.ContainerId, entry.Bundle, ct);
                LogStarted(_log, entry.ContainerId, desired.App, entry.Record.HostPort);
                return new StartedContainer(entry.Record.HostPort, entry.Record.StartedAt!.Value);
            }
            catch when (!ct.IsCancellationRequested)
            {
                // A start that failed half-way leaves nothing behind; the retry starts from scratch. (When the agent
                // is stopping, what runs stays: the next agent adopts it, or tears down what was half made.)
                await TeardownAsync(entry, keepRecord: true, CancellationToken.None);
                throw;
            }
            finally
            {
                _starts.Release();
            }
        }
        finally
        {
            ExitStart();
        }
    }

    private async Task EnterStartAsync(CancellationToken ct)
    {
        while (true)
        {
            Task collecting;
            lock (_gate)
            {
                if (_collecting is null)
                {
                    _inFlight++;
                    return;
                }
                collecting = _collecting.Task;
            }
            await collecting.WaitAsync(ct);
        }
    }

    private void ExitStart()
    {
        lock (_gate) _inFlight--;
    }

    /// <summary>Whether the bundle is ready to run again (an exit after a start): spec, mounted root and network in place.</summary>
    private async Task<bool> PreparedAsync(Entry e, CancellationToken ct) =>
        e.Record.HostPort > 0 && File.Exists(Path.Combine(e.Bundle, "config.json"))
        && await Rootfs.IsMountedAsync(Path.Combine(e.Bundle, "rootfs"), ct)
        && NetworkNamespaces.Exists(Network.NamespaceOf(e.ContainerId));

    /// <summary>Image, bundle, overlay root, network and spec, in that order; the record is saved before anything is set up, so a crash can still be torn down.</summary>
    private async Task PrepareAsync(Entry e, CancellationToken ct)
    {
        var d = e.Record.Desired;
        if (e.Record.HostPort > 0)
            await TeardownAsync(e, keepRecord: true, ct);   // what an earlier, broken try left (its port and network go first)
        var image = await PullAsync(d.Image, ct);
        var args = image.Entrypoint.Concat(image.Cmd).ToList();
        if (args.Count == 0) throw new InvalidOperationException("the image has no Entrypoint or Cmd: nothing to run");
        var hostStart = ProjectSlots.HostIdStart(e.Record.Slot);

        Directory.CreateDirectory(e.Bundle);
        File.SetUnixFileMode(e.Bundle, (UnixFileMode)0b111_001_001);   // 0711: the mapped root traverses it
        e.Record = e.Record with { HostPort = _ports.Allocate(), Layers = image.Layers };
        await SaveAsync(e, ct);
        var rootfs = await _rootfs.MountAsync(e.Bundle, image.Layers, hostStart, ct);
        Attachment attachment;
        var slot = SlotLock(e.Record.Slot);
        await slot.WaitAsync(ct);
        try { attachment = await _network.AttachAsync(e.ContainerId, _slots.NetworkOf(e.Record.Slot), e.Record.HostPort, d.Port, ct); }
        finally { slot.Release(); }
        var (uid, gid) = ImageUser.Resolve(image.User, rootfs, ProjectSlots.IdRangeSize);
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in image.Env)
        {
            var eq = kv.IndexOf('=');
            if (eq > 0) env[kv[..eq]] = kv[(eq + 1)..];
        }
        foreach (var (k, v) in d.Env) env[k] = v;
        env["PORT"] = d.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        env.TryAdd("HOSTNAME", d.App);
        var spec = RuntimeSpec.Build(new InstanceSpec
        {
            Id = e.ContainerId, RootfsPath = rootfs, Args = args, Env = env.Select(x => $"{x.Key}={x.Value}").ToList(),
            Cwd = image.WorkingDir, Uid = uid, Gid = gid, Hostname = d.App, HostIdStart = hostStart, IdRangeSize = ProjectSlots.IdRangeSize,
            MemoryBytes = d.MemoryMiB * 1024L * 1024L, CpuMillicores = d.CpuMillicores, PidsLimit = _settings.PidsLimit,
            NetworkNamespacePath = attachment.NamespacePath, CgroupsPath = CgroupsPathOf(d.Id),
        }, _seccomp);
        // The spec and the record hold the app's environment (its secrets): root's alone, although the bundle is passable.
        await PrivateFile.WriteAllTextAsync(Path.Combine(e.Bundle, "config.json"), spec.ToJsonString(), ct);
    }

    /// <summary>One pull per image at a time, shared by the instances that start together; a failed pull is forgotten.</summary>
    private Task<PulledImage> PullAsync(string image, CancellationToken ct)
    {
        var lazy = _images.GetOrAdd(image, i => new Lazy<Task<PulledImage>>(() => _puller().PullAsync($"{_settings.Registry}/{i}", ct)));
        var task = lazy.Value;
        _ = task.ContinueWith(_ => _images.TryRemove(new KeyValuePair<string, Lazy<Task<PulledImage>>>(image, lazy)),
            CancellationToken.None, TaskContinuationOptions.NotOnRanToCompletion, TaskScheduler.Default);
        return task;
    }

    public Task<ExitInfo> WaitForExitAsync(Guid id, CancellationToken ct) =>
        _entries.TryGetValue(id, out var e)
            ? _exits.WaitAsync(e.Bundle, ct)
            : Task.FromException<ExitInfo>(new InvalidOperationException($"instance {id} is not on this node"));

    public Task<ProbeResult> ProbeAsync(Guid id, ProbeSpec probe, CancellationToken ct) =>
        _entries.TryGetValue(id, out var e) && e.Record.HostPort > 0
            ? Prober.ProbeAsync(IPAddress.Loopback, e.Record.HostPort, e.Record.Desired.Port, probe, ct)
            : Task.FromResult(new ProbeResult(false, "the instance has no port on this node"));

    public async Task KillAsync(Guid id, TimeSpan grace, CancellationToken ct)
    {
        if (_entries.TryGetValue(id, out var e)) await _runc.KillAsync(e.ContainerId, Capped(grace), ct);
    }

    /// <summary>The app's grace period, at most the node's (<c>Agent:StopGraceSeconds</c>).</summary>
    private TimeSpan Grace(DesiredInstance d) => Capped(TimeSpan.FromSeconds(d.StopGraceSeconds));

    private TimeSpan Capped(TimeSpan grace) => grace < _settings.StopGrace ? grace : _settings.StopGrace;

    /// <summary>How long a stopping instance stays out of the rotation before its SIGTERM, so routers stop sending it requests first.</summary>
    public static readonly TimeSpan DrainDelay = TimeSpan.FromSeconds(1);

    public async Task RemoveAsync(Guid id, CancellationToken ct)
    {
        if (!_entries.TryGetValue(id, out var e)) return;
        if (Grace(e.Record.Desired) > TimeSpan.Zero && await _runc.StateAsync(e.ContainerId, ct) is { Status: "running" })
            await Task.Delay(DrainDelay, _clock, ct);
        await TeardownAsync(e, keepRecord: false, ct);
        // The project's last instance here: its slot is free again and its bridge goes (a later one recreates it).
        // Under the slot's lock, so an instance attaching now (of this project, or of the next one to take the
        // slot) is either counted or attaches after the bridge went.
        var slot = SlotLock(e.Record.Slot);
        await slot.WaitAsync(ct);
        try
        {
            _entries.TryRemove(id, out _);
            if (_slots.Release(e.Record.Desired.ProjectId, id))
                await _network.RemoveBridgeAsync(_slots.NetworkOf(e.Record.Slot), ct);
        }
        finally
        {
            slot.Release();
        }
        LogRemoved(_log, e.ContainerId);
    }

    private SemaphoreSlim SlotLock(int slot) => _slotLocks.GetOrAdd(slot, _ => new SemaphoreSlim(1, 1));

    /// <summary>SIGTERM, grace, SIGKILL; then the network (CNI DEL while the name-space exists), the overlay, the port, the bundle.</summary>
    private async Task TeardownAsync(Entry e, bool keepRecord, CancellationToken ct)
    {
        await _runc.StopAsync(e.ContainerId, Grace(e.Record.Desired), ct);
        await ExitWatcher.SettleAsync(e.Bundle, _clock, ct);
        if (e.Record.HostPort > 0)
            await _network.DetachAsync(e.ContainerId, _slots.NetworkOf(e.Record.Slot), e.Record.HostPort, e.Record.Desired.Port, ct);
        await _rootfs.UnmountAsync(e.Bundle, ct);
        if (e.Record.HostPort > 0) _ports.Release(e.Record.HostPort);
        if (!Directory.Exists(e.Bundle)) return;
        if (keepRecord)
        {
            foreach (var entry in Directory.GetFileSystemEntries(e.Bundle))
                if (Path.GetFileName(entry) is not ("instance.json" or "output.log" or "output.log.1"))
                {
                    NoFollow.RemoveTree(entry);
                }
            e.Record = e.Record with { HostPort = 0 };
            await SaveAsync(e, ct);
        }
        else
        {
            // Byte-level, no-follow and on one file system: the upper folder holds whatever names the tenant wrote
            // (not necessarily UTF-8), and a root that failed to unmount is refused rather than emptied.
            NoFollow.RemoveTree(e.Bundle);
        }
    }

    private static async Task SaveAsync(Entry e, CancellationToken ct)
    {
        var file = Path.Combine(e.Bundle, "instance.json");
        Directory.CreateDirectory(e.Bundle);
        await PrivateFile.WriteAllTextAsync(file, JsonSerializer.Serialize(e.Record), ct);
    }

    public (long CpuNanos, long MemoryBytes)? Usage(Guid id) => Cgroups.Usage(CgroupsPathOf(id));

    public string? LogFolderOf(Guid id) => _entries.TryGetValue(id, out var e) ? e.Bundle : null;

    public Task HousekeepAsync(DateTime now, bool desiredKnown, CancellationToken ct)
    {
        _rotator.Rotate(_entries.Values.Select(e => e.Bundle));
        if (!desiredKnown) return Task.CompletedTask;   // never before the first desired state
        lock (_gate)
        {
            if (_inFlight > 0) return Task.CompletedTask;   // a start may be about to use a layer
            _collecting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        try
        {
            var records = _entries.Values.Select(e => e.Record).ToList();
            if (_collector.Collect(records, now) > 0)
                foreach (var (image, _) in _images) _images.TryRemove(image, out _);   // pulled (and unpacked) again when next needed
        }
        finally
        {
            TaskCompletionSource done;
            lock (_gate) (done, _collecting) = (_collecting!, null);
            done.SetResult();
        }
        return Task.CompletedTask;
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Adopted running container {Id} (pid {Pid})")]
    private static partial void LogAdopted(ILogger logger, string id, int pid);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Started {Id} of app {App} on host port {Port}")]
    private static partial void LogStarted(ILogger logger, string id, string app, int port);

    [LoggerMessage(EventId = 24, Level = LogLevel.Information, Message = "Stopped and removed {Id}")]
    private static partial void LogRemoved(ILogger logger, string id);

    [LoggerMessage(EventId = 32, Level = LogLevel.Warning, Message = "Tearing down what {Id} left failed: {Reason}")]
    private static partial void LogTeardownFailed(ILogger logger, string id, string reason);
}
