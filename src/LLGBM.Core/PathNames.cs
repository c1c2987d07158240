using System.Text;

namespace LLGBM;

/// <summary>
/// Checks the names that become path components: task names, generator run names, mixture names, the adapter paths a
/// teacher pool's manifest lists. A name is usable when it is not empty, is not <c>.</c> or <c>..</c>, holds no
/// directory separator (<c>/</c> or <c>\</c>) and no control character (Unicode category Cc: U+0000 to U+001F, U+007F to U+009F), and is at most
/// <see cref="MaxBytes"/> bytes of UTF-8 (the file-name limit of Linux, macOS and Windows file systems). Such a name
/// joined under a directory always names an entry of that directory, never the directory itself or a place outside it.
/// </summary>
public static class PathNames
{
    /// <summary>The longest usable name, in bytes of UTF-8.</summary>
    public const int MaxBytes = 255;

    /// <summary>What is wrong with <paramref name="name"/> as a path component, or null when nothing is.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrEmpty(name))
            return "it is empty";
        if (name is "." or "..")
            return $"\"{name}\" names a directory itself, not an entry of it";
        if (name.IndexOfAny(['/', '\\']) is var separator and >= 0)
            return $"it holds the directory separator '{name[separator]}'";
        foreach (var c in name)
            if (char.IsControl(c))
                return $"it holds the control character U+{(int)c:X4}";
        if (Encoding.UTF8.GetByteCount(name) > MaxBytes)
            return $"it is longer than {MaxBytes} bytes of UTF-8";
        return null;
    }

    /// <summary>
    /// Returns <paramref name="name"/> when it is a usable path component; otherwise throws an
    /// <see cref="LlgbmException"/> naming <paramref name="source"/> (the file or option it came from),
    /// <paramref name="field"/> (the field or option), the name and what is wrong with it.
    /// </summary>
    public static string Validate(string? name, string field, string source) =>
        Problem(name) is { } problem
            ? throw new LlgbmException(
                $"{source}: {field} {Quote(name)} cannot be a file or directory name: {problem} (a name is not \".\" or \"..\" and holds no '/', " +
                $"'\\' or control characters).")
            : name!;

    /// <summary>
    /// Returns <paramref name="path"/> when it is a relative path whose '/'-separated components are each a usable
    /// name (so it stays inside the directory it is joined to); otherwise throws as <see cref="Validate"/> does.
    /// </summary>
    public static string ValidateRelative(string? path, string field, string source)
    {
        if (string.IsNullOrEmpty(path))
            throw new LlgbmException($"{source}: {field} is empty (expected a path relative to its directory).");
        foreach (var part in path.Split('/'))
            if (Problem(part) is { } problem)
                throw new LlgbmException(
                    $"{source}: {field} {Quote(path)} must be a relative path inside its directory, " +
                    $"but a component {Quote(part)} cannot be a name: {problem}.");
        return path;
    }

    /// <summary><paramref name="text"/> in double quotes with control characters escaped (\uXXXX), for one-line messages.</summary>
    public static string Quote(string? text)
    {
        if (text is null)
            return "null";
        var builder = new StringBuilder("\"");
        foreach (var c in text)
            builder.Append(char.IsControl(c) ? $"\\u{(int)c:X4}" : c.ToString());
        return builder.Append('"').ToString();
    }
}
