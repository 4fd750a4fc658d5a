namespace Platform.Contracts;

/// <summary>Problem types (RFC 9457 <c>type</c>, relative references as RFC 9457 §3.1.1 allows; the Api's problem details set them).</summary>
public static class ProblemTypes
{
    public const string QuotaExceeded = "quota-exceeded";
    public const string Validation = "validation";
    public const string Conflict = "conflict";
    /// <summary>A node agent's credentials are valid but the node is no longer a member of the cluster (a platform admin removed it).</summary>
    public const string NodeRevoked = "node-revoked";
}
