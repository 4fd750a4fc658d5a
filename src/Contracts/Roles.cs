namespace Platform.Contracts;

/// <summary>Roles in rising order of power; a higher role can do everything a lower one can.</summary>
public enum Role
{
    Viewer = 1,
    Developer = 2,
    Admin = 3,
    Owner = 4,
}

public static class Roles
{
    public static readonly IReadOnlyList<string> Names = ["viewer", "developer", "admin", "owner"];

    public static bool TryParse(string? value, out Role role)
    {
        switch (value)
        {
            case "viewer": role = Role.Viewer; return true;
            case "developer": role = Role.Developer; return true;
            case "admin": role = Role.Admin; return true;
            case "owner": role = Role.Owner; return true;
            default: role = default; return false;
        }
    }

    public static string ToWire(this Role role) => role switch
    {
        Role.Viewer => "viewer",
        Role.Developer => "developer",
        Role.Admin => "admin",
        Role.Owner => "owner",
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };

    /// <summary>
    /// Whether <paramref name="granter"/> may grant, change or remove <paramref name="target"/>:
    /// owners manage everyone; admins manage members below owner; nobody else manages members.
    /// </summary>
    public static bool CanManage(Role granter, Role target) =>
        granter == Role.Owner || (granter == Role.Admin && target < Role.Owner);
}
