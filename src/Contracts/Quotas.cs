using System.Text.Json.Serialization;

namespace Platform.Contracts;

// Team and project quotas: limits beside usage (`…/quota`).

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record TeamQuotaRequest(long? MemoryMiB, long? CpuMillicores, long? Instances, long? Apps, long? Projects, long? RegistryGiB, long? ConcurrentBuilds,
    BuildLimitsRequest? Build = null);

/// <summary>What one build of the team may use; an absent member keeps its value, 0 means the platform's default.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record BuildLimitsRequest(long? MemoryMiB, long? CpuMillicores, long? Pids, long? TimeoutSeconds);

/// <summary>The limits one build of the team runs under (the team's own or the platform's defaults).</summary>
public sealed record BuildLimitsResponse(long MemoryMiB, long CpuMillicores, long Pids, long TimeoutSeconds);

[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
public sealed record ProjectQuotaRequest(long? MemoryMiB, long? CpuMillicores, long? Instances, long? Apps);

/// <summary>A limit beside its current usage; a null limit means "bounded only by the enclosing scope".</summary>
public sealed record QuotaItem(long? Limit, long Used);

/// <summary>A team's limits and usage; <see cref="RegistryBytesUsed"/> is exact where <c>registryGiB.used</c> rounds up.</summary>
public sealed record TeamQuotaResponse(QuotaItem MemoryMiB, QuotaItem CpuMillicores, QuotaItem Instances, QuotaItem Apps, QuotaItem Projects, QuotaItem RegistryGiB, QuotaItem ConcurrentBuilds, long RegistryBytesUsed,
    BuildLimitsResponse? Build = null);

public sealed record ProjectQuotaResponse(QuotaItem MemoryMiB, QuotaItem CpuMillicores, QuotaItem Instances, QuotaItem Apps);
