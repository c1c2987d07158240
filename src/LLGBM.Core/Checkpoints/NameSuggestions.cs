namespace LLGBM.Checkpoints;

/// <summary>Finds the names nearest to a misspelt one, for error messages.</summary>
internal static class NameSuggestions
{
    /// <summary>Up to <paramref name="count"/> names of <paramref name="candidates"/> by increasing edit distance.</summary>
    public static IReadOnlyList<string> Closest(string name, IEnumerable<string> candidates, int count) =>
        candidates
            .Select(c => (Name: c, Distance: Distance(name, c)))
            .OrderBy(p => p.Distance)
            .ThenBy(p => p.Name, StringComparer.Ordinal)
            .Take(count)
            .Select(p => p.Name)
            .ToArray();

    /// <summary>The Levenshtein distance between two strings (insertions, deletions and substitutions).</summary>
    public static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j], current[j - 1]) + 1);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
