namespace Platform.Contracts;

// Wire records of the REST API (camelCase JSON). Requests refuse unknown members so that a typo in
// a field name is a 400 naming the field, not a silently ignored setting.

/// <summary>A page of a list; <see cref="Next"/> is the cursor for the following page, null at the end.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? Next);
