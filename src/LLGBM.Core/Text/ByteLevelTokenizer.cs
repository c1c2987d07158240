using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using LLGBM.Checkpoints;

namespace LLGBM.Text;

/// <summary>
/// The tokenizer of LLGBM's tiny models: ids 0–255 are the bytes of the UTF-8 text (no normalisation, no merges; a
/// lone surrogate, which has no UTF-8 form, becomes the bytes of U+FFFD),
/// followed by the special tokens <c>&lt;|endoftext|&gt;</c> = 256, <c>&lt;|im_start|&gt;</c> = 257,
/// <c>&lt;|im_end|&gt;</c> = 258 and <c>&lt;|pad|&gt;</c> = 259, recognised when written in the text. The tiny preset's
/// vocabulary of 272 leaves ids 260–271 unused. <see cref="Save"/> writes it as a Hugging Face <c>tokenizer.json</c>
/// (a byte-level BPE whose vocabulary is the 256 byte symbols and which has no merges) plus
/// <c>tokenizer_config.json</c>; <see cref="Tokenizers.Load"/> reads it back.
/// </summary>
public sealed class ByteLevelTokenizer : ITokenizer
{
    /// <summary>The id of <c>&lt;|endoftext|&gt;</c>.</summary>
    public const int EndOfText = 256;

    /// <summary>The id of <c>&lt;|im_start|&gt;</c>.</summary>
    public const int ImStart = 257;

    /// <summary>The id of <c>&lt;|im_end|&gt;</c>.</summary>
    public const int ImEnd = 258;

    /// <summary>The id of <c>&lt;|pad|&gt;</c>.</summary>
    public const int Pad = 259;

    static readonly Dictionary<string, int> DefaultSpecialTokens = new(StringComparer.Ordinal)
    {
        [SpecialTokenTexts.EndOfText] = EndOfText,
        [SpecialTokenTexts.ImStart] = ImStart,
        [SpecialTokenTexts.ImEnd] = ImEnd,
        [SpecialTokenTexts.Pad] = Pad,
    };

    readonly Dictionary<string, int> special;
    readonly Dictionary<int, string> specialById;
    readonly AddedTokenMatcher matcher;

    /// <summary>The byte-level tokenizer with the four standard special tokens (ids 256–259).</summary>
    public ByteLevelTokenizer() : this(DefaultSpecialTokens) { }

    /// <summary>
    /// A byte-level tokenizer with the given special tokens (text → id, ids from 256, distinct), which must include
    /// <c>&lt;|endoftext|&gt;</c>.
    /// </summary>
    /// <exception cref="LlgbmException">An id is below 256 or shared, or <c>&lt;|endoftext|&gt;</c> is missing.</exception>
    public ByteLevelTokenizer(IReadOnlyDictionary<string, int> specialTokens)
    {
        special = new Dictionary<string, int>(specialTokens, StringComparer.Ordinal);
        specialById = [];
        foreach (var (text, id) in special)
        {
            if (id < 256)
                throw new LlgbmException($"the special token \"{text}\" has id {id}; ids 0–255 are the bytes, special tokens start at 256.");
            if (text.Length == 0)
                throw new LlgbmException($"the special token with id {id} has an empty text.");
            if (!specialById.TryAdd(id, text))
                throw new LlgbmException($"the special tokens \"{specialById[id]}\" and \"{text}\" share the id {id}.");
        }
        EndOfTextId = special.TryGetValue(SpecialTokenTexts.EndOfText, out var end)
            ? end
            : throw new LlgbmException($"a byte-level tokenizer needs the special token {SpecialTokenTexts.EndOfText}.");
        VocabSize = Math.Max(256, special.Values.Max() + 1);
        matcher = new AddedTokenMatcher(special);
    }

    /// <inheritdoc/>
    public int VocabSize { get; }

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, int> SpecialTokens => special;

    /// <inheritdoc/>
    public int EndOfTextId { get; }

    /// <inheritdoc/>
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        foreach (var (start, length, id) in matcher.Split(text))
        {
            if (id is { } token)
                ids.Add(token);
            else
                foreach (var b in Encoding.UTF8.GetBytes(text, start, length))
                    ids.Add(b);
        }
        return ids;
    }

    /// <inheritdoc/>
    /// <exception cref="LlgbmException">An id is neither a byte nor a special token.</exception>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (id is >= 0 and < 256)
                bytes.Add((byte)id);
            else if (specialById.TryGetValue(id, out var text))
                bytes.AddRange(Encoding.UTF8.GetBytes(text));
            else
                throw new LlgbmException(
                    $"token id {id} is neither a byte (0–255) nor a special token of the byte-level tokenizer " +
                    $"({string.Join(", ", specialById.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"))}).");
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>
    /// Writes <c>tokenizer.json</c> and <c>tokenizer_config.json</c> into <paramref name="directory"/> (created if
    /// needed; each file written atomically). The <c>tokenizer.json</c> is an ordinary Hugging Face byte-level BPE:
    /// vocabulary = the 256 byte symbols of <see cref="ByteLevelAlphabet"/> with id = byte value, no merges, no
    /// normaliser, a ByteLevel pre-tokeniser that does not split, the special tokens as added tokens.
    /// </summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        AtomicFile.Write(Path.Combine(directory, TokenizerFiles.TokenizerJsonName), stream => WriteTokenizerJson(stream));
        AtomicFile.Write(Path.Combine(directory, TokenizerFiles.ConfigName), stream => WriteConfig(stream));
    }

    /// <summary>
    /// Whether <paramref name="file"/> describes a byte-level tokenizer: the vocabulary is exactly the 256 byte
    /// symbols with id = byte value, there are no merges and no normaliser, and every added token has an id from 256.
    /// </summary>
    internal static bool Describes(TokenizerJson file) =>
        file.Vocabulary.Count == 256
        && Enumerable.Range(0, 256).All(b => file.Vocabulary.TryGetValue(ByteLevelAlphabet.ToChar((byte)b).ToString(), out var id) && id == b)
        && file.Merges.Count == 0
        && !file.Nfc
        && file.AddedTokens.Values.All(id => id >= 256)
        && file.AddedTokens.ContainsKey(SpecialTokenTexts.EndOfText);

    // Non-ASCII symbols (Ġ, Ċ, …) written as themselves rather than \u escapes, so that the file stays readable.
    static readonly JsonWriterOptions Indented = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    void WriteTokenizerJson(Stream stream)
    {
        using var json = new Utf8JsonWriter(stream, Indented);
        json.WriteStartObject();
        json.WriteString("version", "1.0");
        json.WriteNull("truncation");
        json.WriteNull("padding");
        json.WriteStartArray("added_tokens");
        foreach (var (id, text) in specialById.OrderBy(p => p.Key))
        {
            json.WriteStartObject();
            json.WriteNumber("id", id);
            json.WriteString("content", text);
            json.WriteBoolean("single_word", false);
            json.WriteBoolean("lstrip", false);
            json.WriteBoolean("rstrip", false);
            json.WriteBoolean("normalized", false);
            json.WriteBoolean("special", true);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteNull("normalizer");
        WriteByteLevel(json, "pre_tokenizer");
        WriteByteLevel(json, "post_processor");
        WriteByteLevel(json, "decoder");
        json.WriteStartObject("model");
        json.WriteString("type", "BPE");
        json.WriteNull("dropout");
        json.WriteNull("unk_token");
        json.WriteString("continuing_subword_prefix", "");
        json.WriteString("end_of_word_suffix", "");
        json.WriteBoolean("fuse_unk", false);
        json.WriteBoolean("byte_fallback", false);
        json.WriteBoolean("ignore_merges", false);
        json.WriteStartObject("vocab");
        for (var b = 0; b < 256; b++)
            json.WriteNumber(ByteLevelAlphabet.ToChar((byte)b).ToString(), b);
        json.WriteEndObject();
        json.WriteStartArray("merges");
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndObject();
    }

    static void WriteByteLevel(Utf8JsonWriter json, string name)
    {
        json.WriteStartObject(name);
        json.WriteString("type", "ByteLevel");
        json.WriteBoolean("add_prefix_space", false);
        json.WriteBoolean("trim_offsets", false);
        json.WriteBoolean("use_regex", false);
        json.WriteEndObject();
    }

    void WriteConfig(Stream stream)
    {
        using var json = new Utf8JsonWriter(stream, Indented);
        json.WriteStartObject();
        json.WriteString("tokenizer_class", "PreTrainedTokenizerFast");
        json.WriteBoolean("add_bos_token", false);
        json.WriteBoolean("add_prefix_space", false);
        json.WriteNull("bos_token");
        json.WriteString("eos_token", SpecialTokenTexts.EndOfText);
        if (special.ContainsKey(SpecialTokenTexts.Pad))
            json.WriteString("pad_token", SpecialTokenTexts.Pad);
        json.WriteNull("unk_token");
        json.WriteBoolean("clean_up_tokenization_spaces", false);
        json.WriteStartObject("added_tokens_decoder");
        foreach (var (id, text) in specialById.OrderBy(p => p.Key))
        {
            json.WriteStartObject(id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            json.WriteString("content", text);
            json.WriteBoolean("lstrip", false);
            json.WriteBoolean("normalized", false);
            json.WriteBoolean("rstrip", false);
            json.WriteBoolean("single_word", false);
            json.WriteBoolean("special", true);
            json.WriteEndObject();
        }
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
