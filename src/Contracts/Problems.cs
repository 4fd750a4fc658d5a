namespace Platform.Contracts;

/// <summary>Problem types (RFC 9457 <c>type</c>, relative references as RFC 9457 §3.1.1 allows; the Api's problem details set them).</summary>
public static class ProblemTypes
{
    public const string QuotaExceeded = "quota-exceeded";
    public const string Validation = "validation";
    public const string Conflict = "conflict";
}
