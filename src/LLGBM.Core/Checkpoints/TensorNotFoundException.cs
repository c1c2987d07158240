namespace LLGBM.Checkpoints;

/// <summary>A tensor was asked for by a name that the file or checkpoint does not hold.</summary>
public sealed class TensorNotFoundException : LlgbmException
{
    /// <summary>Creates the error, suggesting the names in <paramref name="available"/> closest to <paramref name="name"/>.</summary>
    /// <param name="name">The name asked for.</param>
    /// <param name="source">The file or directory searched.</param>
    /// <param name="available">Every name the source holds.</param>
    public TensorNotFoundException(string name, string source, IReadOnlyCollection<string> available)
        : this(name, source, available.Count, NameSuggestions.Closest(name, available, 5))
    {
    }

    private TensorNotFoundException(string name, string source, int count, IReadOnlyList<string> suggestions)
        : base(Compose(name, source, count, suggestions))
    {
        Name = name;
        Location = source;
        Suggestions = suggestions;
    }

    /// <summary>The name asked for.</summary>
    public string Name { get; }

    /// <summary>The file or directory searched.</summary>
    public string Location { get; }

    /// <summary>The held names closest to <see cref="Name"/>, closest first.</summary>
    public IReadOnlyList<string> Suggestions { get; }

    private static string Compose(string name, string source, int count, IReadOnlyList<string> suggestions)
    {
        var held = count == 1 ? "1 tensor" : $"{count} tensors";
        var closest = suggestions.Count == 0
            ? ""
            : " Closest names: " + string.Join(", ", suggestions.Select(s => $"'{s}'")) + ".";
        return $"No tensor named '{name}' in '{source}' ({held}).{closest}";
    }
}
