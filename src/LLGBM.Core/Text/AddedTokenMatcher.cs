namespace LLGBM.Text;

/// <summary>
/// Finds added (special) tokens written in a text, as Hugging Face <c>tokenizers</c> does: scanning from the left,
/// the longest token that starts at the first position where any starts. Matching is ordinal, on the raw text.
/// </summary>
internal sealed class AddedTokenMatcher
{
    readonly (string Text, int Id)[] byLength;
    readonly HashSet<char> firstChars;

    /// <summary>Creates a matcher for <paramref name="tokens"/> (text → id); empty texts are ignored.</summary>
    public AddedTokenMatcher(IReadOnlyDictionary<string, int> tokens)
    {
        byLength = tokens.Where(t => t.Key.Length > 0)
            .OrderByDescending(t => t.Key.Length).ThenBy(t => t.Key, StringComparer.Ordinal)
            .Select(t => (t.Key, t.Value)).ToArray();
        firstChars = byLength.Select(t => t.Text[0]).ToHashSet();
    }

    /// <summary>
    /// The text cut into segments in order: the added tokens (with their id) and the plain text between them
    /// (id null, never empty).
    /// </summary>
    public List<(int Start, int Length, int? Id)> Split(string text)
    {
        var segments = new List<(int Start, int Length, int? Id)>();
        var plainStart = 0;
        var i = 0;
        while (i < text.Length)
        {
            var match = firstChars.Contains(text[i]) ? Match(text, i) : null;
            if (match is not { } found)
            {
                i++;
                continue;
            }
            if (i > plainStart)
                segments.Add((plainStart, i - plainStart, null));
            segments.Add((i, found.Length, found.Id));
            i += found.Length;
            plainStart = i;
        }
        if (text.Length > plainStart)
            segments.Add((plainStart, text.Length - plainStart, null));
        return segments;
    }

    (int Length, int Id)? Match(string text, int i)
    {
        foreach (var (token, id) in byLength)
            if (text.AsSpan(i).StartsWith(token, StringComparison.Ordinal))
                return (token.Length, id);
        return null;
    }
}
