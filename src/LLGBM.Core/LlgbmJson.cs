using System.Text.Json;
using System.Text.Json.Serialization;

namespace LLGBM;

/// <summary>The JSON settings of every file and result LLGBM writes or reads, in one place.</summary>
public static class LlgbmJson
{
    /// <summary>Results, manifests and reports: snake_case names, indented.</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    /// <summary>The same on one line, for JSON-lines files and one-line outputs.</summary>
    public static JsonSerializerOptions Line { get; } = new(Options) { WriteIndented = false };

    /// <summary>Config files people write: as <see cref="Options"/>, with comments and trailing commas allowed and unknown keys refused.</summary>
    public static JsonSerializerOptions Config { get; } = new(Options)
    {
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };
}
