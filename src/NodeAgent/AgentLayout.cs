namespace Platform.NodeAgent;

/// <summary>
/// The agent's data folder, in one place: what lives where under <c>Agent:DataDir</c>. The instances' bundles
/// must be traversable by the containers' mapped users, so every folder above the data folder must let others
/// pass (see <see cref="AgentOptionsValidator"/>). Layers, their shifted copies and downloads are root-only
/// (0700): they hold tenants' setuid files, and overlay reaches its lower folders with the mounter's rights.
/// </summary>
public sealed record AgentLayout(string Root)
{
    public static AgentLayout For(string dataDir) => new(Path.GetFullPath(dataDir));

    /// <summary>The node's client credentials (mode 0600).</summary>
    public string Credentials => Path.Combine(Root, "credentials.json");
    /// <summary>One bundle folder per instance: record, spec, root file system, logs, exit code.</summary>
    public string Instances => Path.Combine(Root, "instances");
    public string Bundle(Guid instance) => Path.Combine(Instances, instance.ToString("N"));
    /// <summary>runc's state root (<c>runc --root</c>).</summary>
    public string RuncState => Path.Combine(Root, "runc");
    /// <summary>Unpacked image layers, content-addressed (<c>sha256/{hex}</c>, expanded sizes in <c>sizes/{hex}</c>); 0700.</summary>
    public string Layers => Path.Combine(Root, "layers");
    public string LayerFolders => Path.Combine(Layers, "sha256");
    /// <summary>Overlay material: layers copied with owners shifted into a project's id range (<c>shifted/{first id}/{hex}</c>).</summary>
    public string Rootfs => Path.Combine(Root, "rootfs");
    public string ShiftedLayers => Path.Combine(Rootfs, "shifted");
    /// <summary>host-local IPAM's leases and each attachment's CNI result.</summary>
    public string Ipam => Path.Combine(Root, "ipam");
    /// <summary>Which project has which slot (id range, bridge, subnet) on this node.</summary>
    public string ProjectSlots => Path.Combine(Root, "projects.json");
    /// <summary>Blobs being downloaded.</summary>
    public string Scratch => Path.Combine(Root, "scratch");
}
