using System.Security.Cryptography;
using System.Text;

namespace LLGBM;

/// <summary>SHA-256 content hashes (lower-case hex) of files, directories and texts, for cache keys and manifests.</summary>
public static class ContentHash
{
    /// <summary>The hash of a file's bytes.</summary>
    public static string OfFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>The hash of a text (UTF-8).</summary>
    public static string OfText(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>
    /// The hash of the named files of a directory that exist (their names and contents, in ordinal name order), e.g.
    /// a checkpoint's config and weights.
    /// </summary>
    public static string OfFiles(string directory, IEnumerable<string> names)
    {
        var lines = names.Order(StringComparer.Ordinal)
            .Where(n => File.Exists(Path.Combine(directory, n)))
            .Select(n => $"{n} {OfFile(Path.Combine(directory, n))}");
        return OfText(string.Join('\n', lines));
    }

    /// <summary>The hash of a Hugging Face checkpoint directory: config.json and every .safetensors file and index.</summary>
    public static string OfCheckpoint(string directory) =>
        OfFiles(directory, Directory.EnumerateFiles(directory)
            .Select(Path.GetFileName)
            .Where(n => n == "config.json"
                || n!.EndsWith(".safetensors", StringComparison.Ordinal)
                || n.EndsWith(".safetensors.index.json", StringComparison.Ordinal))
            .Select(n => n!));
}
