using System.Text.Json;

namespace LLGBM.Text;

/// <summary>What LLGBM reads from a Hugging Face <c>tokenizer.json</c> holding a byte-level BPE.</summary>
/// <param name="Path">The file.</param>
/// <param name="Vocabulary">model.vocab: token (byte-level symbols) → id.</param>
/// <param name="Merges">model.merges in rank order.</param>
/// <param name="AddedTokens">added_tokens: text → id.</param>
/// <param name="Nfc">Whether the normalizer is NFC (otherwise there is none).</param>
/// <param name="SplitsLikeQwen2">Whether the pre-tokenizer splits with Qwen2's pattern (otherwise it does not split).</param>
internal sealed record TokenizerJson(
    string Path,
    Dictionary<string, int> Vocabulary,
    List<(string Left, string Right)> Merges,
    Dictionary<string, int> AddedTokens,
    bool Nfc,
    bool SplitsLikeQwen2);

/// <summary>Readers for the tokenizer files of a Hugging Face checkpoint directory; errors name the file and field.</summary>
internal static class TokenizerFiles
{
    public const string TokenizerJsonName = "tokenizer.json";
    public const string VocabName = "vocab.json";
    public const string MergesName = "merges.txt";
    public const string ConfigName = "tokenizer_config.json";

    /// <summary>Reads a <c>tokenizer.json</c> whose model is a byte-level BPE of the kind Qwen2 uses.</summary>
    public static TokenizerJson ReadTokenizerJson(string path)
    {
        using var document = Parse(path);
        var root = Object(document.RootElement, path, "the top level");
        var model = Object(Property(root, "model", path), path, "model");
        if (model.TryGetProperty("type", out var type) && type.ValueKind != JsonValueKind.Null && type.GetString() != "BPE")
            throw new LlgbmException($"{path}: model.type is \"{type}\"; only byte-level BPE (\"BPE\") is supported.");
        CheckUnsupported(model, path);

        var vocabulary = ReadVocabulary(Property(model, "vocab", path), path, "model.vocab");
        var merges = new List<(string, string)>();
        if (model.TryGetProperty("merges", out var mergeList) && mergeList.ValueKind != JsonValueKind.Null)
        {
            var index = 0;
            foreach (var merge in Array(mergeList, path, "model.merges").EnumerateArray())
            {
                merges.Add(merge.ValueKind switch
                {
                    JsonValueKind.String => SplitMerge(merge.GetString()!, path, $"model.merges[{index}]"),
                    JsonValueKind.Array when merge.GetArrayLength() == 2 && merge.EnumerateArray().All(p => p.ValueKind == JsonValueKind.String)
                        => (merge[0].GetString()!, merge[1].GetString()!),
                    _ => throw new LlgbmException($"{path}: model.merges[{index}] must be a string \"a b\" or a pair [\"a\", \"b\"]."),
                });
                index++;
            }
        }

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root.TryGetProperty("added_tokens", out var addedList) && addedList.ValueKind != JsonValueKind.Null)
        {
            var index = 0;
            foreach (var token in Array(addedList, path, "added_tokens").EnumerateArray())
            {
                var where = $"added_tokens[{index++}]";
                Object(token, path, where);
                var content = String(Property(token, "content", path, where), path, $"{where}.content");
                var id = Id(Property(token, "id", path, where), path, $"{where}.id");
                AddAddedToken(added, content, id, path);
            }
        }

        return new TokenizerJson(path, vocabulary, merges, added, ReadNormalizer(root, path), ReadPreTokenizer(root, path));
    }

    /// <summary>Reads a <c>vocab.json</c> (token → id).</summary>
    public static Dictionary<string, int> ReadVocabJson(string path)
    {
        using var document = Parse(path);
        return ReadVocabulary(document.RootElement, path, "the top level");
    }

    /// <summary>Reads a <c>merges.txt</c>: one "a b" pair per line in rank order, after an optional <c>#version</c> line.</summary>
    public static List<(string Left, string Right)> ReadMergesTxt(string path)
    {
        var merges = new List<(string, string)>();
        var lineNumber = 0;
        foreach (var line in ReadLines(path))
        {
            lineNumber++;
            if ((lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)) || line.Length == 0)
                continue;
            merges.Add(SplitMerge(line, path, $"line {lineNumber}"));
        }
        return merges;
    }

    /// <summary>The added tokens of a <c>tokenizer_config.json</c> (its <c>added_tokens_decoder</c>, id → token).</summary>
    public static Dictionary<string, int> ReadConfigAddedTokens(string path)
    {
        using var document = Parse(path);
        var root = Object(document.RootElement, path, "the top level");
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!root.TryGetProperty("added_tokens_decoder", out var decoder) || decoder.ValueKind == JsonValueKind.Null)
            return added;
        foreach (var entry in Object(decoder, path, "added_tokens_decoder").EnumerateObject())
        {
            var where = $"added_tokens_decoder.\"{entry.Name}\"";
            if (!int.TryParse(entry.Name, out var id) || id < 0)
                throw new LlgbmException($"{path}: {where}: the key must be a non-negative token id.");
            var content = entry.Value.ValueKind == JsonValueKind.String
                ? entry.Value.GetString()!
                : String(Property(Object(entry.Value, path, where), "content", path, where), path, $"{where}.content");
            AddAddedToken(added, content, id, path);
        }
        return added;
    }

    /// <summary>Adds the tokens of <paramref name="more"/> (read from <paramref name="path"/>) to <paramref name="added"/>, refusing conflicting ids.</summary>
    public static void Merge(Dictionary<string, int> added, IReadOnlyDictionary<string, int> more, string path)
    {
        foreach (var (content, id) in more)
            AddAddedToken(added, content, id, path);
    }

    static void AddAddedToken(Dictionary<string, int> added, string content, int id, string path)
    {
        if (added.TryGetValue(content, out var existing) && existing != id)
            throw new LlgbmException($"{path}: the added token \"{content}\" has id {id} here but {existing} elsewhere.");
        added[content] = id;
    }

    static void CheckUnsupported(JsonElement model, string path)
    {
        static bool Set(JsonElement model, string name, Func<JsonElement, bool> isSet) =>
            model.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null && isSet(value);
        if (Set(model, "dropout", v => v.ValueKind == JsonValueKind.Number && v.GetDouble() != 0))
            throw new LlgbmException($"{path}: model.dropout is set; BPE dropout is not supported.");
        if (Set(model, "byte_fallback", v => v.ValueKind == JsonValueKind.True))
            throw new LlgbmException($"{path}: model.byte_fallback is true; only byte-level BPE (byte_fallback false) is supported.");
        if (Set(model, "ignore_merges", v => v.ValueKind == JsonValueKind.True))
            throw new LlgbmException($"{path}: model.ignore_merges is true; it is not supported (Qwen2 has false).");
        foreach (var name in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (Set(model, name, v => v.ValueKind != JsonValueKind.String || v.GetString()!.Length > 0))
                throw new LlgbmException($"{path}: model.{name} is set; only byte-level BPE without one is supported.");
    }

    static bool ReadNormalizer(JsonElement root, string path)
    {
        if (!root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind == JsonValueKind.Null)
            return false;
        var type = TypeOf(normalizer, path, "normalizer");
        if (type == "NFC")
            return true;
        if (type == "Sequence" && normalizer.TryGetProperty("normalizers", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            var types = list.EnumerateArray().Select((n, i) => TypeOf(n, path, $"normalizer.normalizers[{i}]")).ToList();
            if (types.All(t => t == "NFC"))
                return types.Count > 0;
        }
        throw new LlgbmException($"{path}: normalizer {normalizer.GetRawText()} is not supported; expected null or {{\"type\": \"NFC\"}}.");
    }

    static bool ReadPreTokenizer(JsonElement root, string path)
    {
        var expected = $"expected Qwen2's (a Split with the regex {Qwen2PreTokenizer.Pattern}, then ByteLevel without regex) or a lone ByteLevel without regex";
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind == JsonValueKind.Null)
            throw new LlgbmException($"{path}: pre_tokenizer is missing; {expected}.");
        var parts = TypeOf(pre, path, "pre_tokenizer") == "Sequence"
                && pre.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().ToList()
            : [pre];
        bool IsByteLevel(JsonElement p) =>
            p.ValueKind == JsonValueKind.Object && TypeOf(p, path, "pre_tokenizer") == "ByteLevel"
            && p.TryGetProperty("use_regex", out var useRegex) && useRegex.ValueKind == JsonValueKind.False
            && !(p.TryGetProperty("add_prefix_space", out var prefix) && prefix.ValueKind == JsonValueKind.True);
        bool IsQwen2Split(JsonElement p) =>
            p.ValueKind == JsonValueKind.Object && TypeOf(p, path, "pre_tokenizer") == "Split"
            && p.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object
            && pattern.TryGetProperty("Regex", out var regex) && regex.ValueKind == JsonValueKind.String
            && regex.GetString() == Qwen2PreTokenizer.Pattern
            && p.TryGetProperty("behavior", out var behavior) && behavior.GetString() == "Isolated"
            && !(p.TryGetProperty("invert", out var invert) && invert.ValueKind == JsonValueKind.True);
        if (parts.Count == 2 && IsQwen2Split(parts[0]) && IsByteLevel(parts[1]))
            return true;
        if (parts.Count == 1 && IsByteLevel(parts[0]))
            return false;
        throw new LlgbmException($"{path}: pre_tokenizer {Shorten(pre.GetRawText())} is not supported; {expected}.");
    }

    static string Shorten(string text) => text.Length <= 300 ? text : text[..300] + "…";

    static string TypeOf(JsonElement element, string path, string where) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
            ? type.GetString()!
            : throw new LlgbmException($"{path}: {where} must be an object with a \"type\".");

    static Dictionary<string, int> ReadVocabulary(JsonElement element, string path, string where)
    {
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in Object(element, path, where).EnumerateObject())
            vocabulary[entry.Name] = Id(entry.Value, path, $"{where}.\"{entry.Name}\"");
        if (vocabulary.Count == 0)
            throw new LlgbmException($"{path}: {where} is empty; expected token → id entries.");
        return vocabulary;
    }

    static (string, string) SplitMerge(string merge, string path, string where)
    {
        var parts = merge.Split(' ');
        if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            throw new LlgbmException($"{path}: {where}: expected two tokens separated by one space, found \"{merge}\".");
        return (parts[0], parts[1]);
    }

    static JsonDocument Parse(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"{path}: not valid JSON ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new LlgbmException($"{path}: cannot be read ({e.Message})", e);
        }
    }

    static IEnumerable<string> ReadLines(string path)
    {
        try
        {
            return File.ReadAllLines(path);
        }
        catch (IOException e)
        {
            throw new LlgbmException($"{path}: cannot be read ({e.Message})", e);
        }
    }

    static JsonElement Property(JsonElement element, string name, string path, string? where = null) =>
        element.TryGetProperty(name, out var value)
            ? value
            : throw new LlgbmException($"{path}: {(where is null ? "" : where + ".")}{name} is missing.");

    static JsonElement Object(JsonElement element, string path, string where) =>
        element.ValueKind == JsonValueKind.Object ? element : throw new LlgbmException($"{path}: {where} must be a JSON object.");

    static JsonElement Array(JsonElement element, string path, string where) =>
        element.ValueKind == JsonValueKind.Array ? element : throw new LlgbmException($"{path}: {where} must be a JSON array.");

    static string String(JsonElement element, string path, string where) =>
        element.ValueKind == JsonValueKind.String ? element.GetString()! : throw new LlgbmException($"{path}: {where} must be a string.");

    static int Id(JsonElement element, string path, string where) =>
        element.ValueKind == JsonValueKind.Number && element.TryGetInt32(out var id) && id >= 0
            ? id
            : throw new LlgbmException($"{path}: {where} must be a non-negative integer token id, found {element.GetRawText()}.");
}
