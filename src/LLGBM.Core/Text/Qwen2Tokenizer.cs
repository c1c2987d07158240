using System.Text;
using Microsoft.ML.Tokenizers;

namespace LLGBM.Text;

/// <summary>
/// Qwen2's byte-level BPE tokenizer. Encoding follows Hugging Face <c>tokenizers</c>: added tokens written in the text
/// (<c>&lt;|im_start|&gt;</c>, …) are cut out first and become their ids; each piece of text between them is
/// normalised to NFC, split by <see cref="Qwen2PreTokenizer"/> (digits one per piece), turned into UTF-8 bytes written
/// with <see cref="ByteLevelAlphabet"/>, and merged by Microsoft.ML.Tokenizers' BPE (lowest merge rank first). No BOS
/// or EOS is added. Decoding writes added tokens as their text and turns the other tokens back into bytes, then into
/// UTF-8 text (an incomplete or invalid byte sequence becomes U+FFFD).
/// </summary>
public sealed class Qwen2Tokenizer : ITokenizer
{
    readonly BpeTokenizer bpe;
    readonly AddedTokenMatcher matcher;
    readonly Dictionary<int, string> addedById;
    readonly Dictionary<int, string> symbolsById;
    readonly Dictionary<string, int> added;
    readonly string source;

    Qwen2Tokenizer(
        IReadOnlyDictionary<string, int> vocabulary,
        IReadOnlyList<(string Left, string Right)> merges,
        IReadOnlyDictionary<string, int> addedTokens,
        bool nfc,
        bool split,
        string source)
    {
        this.source = source;
        NormalizesToNfc = nfc;
        for (var b = 0; b < 256; b++)
        {
            var symbol = ByteLevelAlphabet.ToChar((byte)b).ToString();
            if (!vocabulary.ContainsKey(symbol))
                throw new LlgbmException($"{source}: the vocabulary lacks the symbol '{symbol}' of byte 0x{b:X2}; a byte-level BPE needs all 256.");
        }
        foreach (var (left, right) in merges)
            if (left.Contains(' ') || right.Contains(' '))
                throw new LlgbmException($"{source}: the merge (\"{left}\", \"{right}\") contains a space, which byte-level symbols never do.");
        added = WithChatMLTokens(vocabulary, addedTokens);
        addedById = [];
        foreach (var (text, id) in added)
            if (!addedById.TryAdd(id, text))
                throw new LlgbmException($"{source}: the added tokens \"{addedById[id]}\" and \"{text}\" share the id {id}.");
        matcher = new AddedTokenMatcher(added);
        symbolsById = [];
        foreach (var (symbols, id) in vocabulary)
            symbolsById.TryAdd(id, symbols);
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(vocabulary)
            {
                Merges = merges.Select(m => $"{m.Left} {m.Right}").ToList(),
                PreTokenizer = split ? Qwen2PreTokenizer.Instance : WholeText.Instance,
                ByteLevel = true,
            });
        }
        catch (InvalidOperationException e)
        {
            throw new LlgbmException($"{source}: the vocabulary and merges do not form a BPE model ({e.Message})", e);
        }
        VocabSize = Math.Max(vocabulary.Values.Max(), added.Values.DefaultIfEmpty(-1).Max()) + 1;
        EndOfTextId = added[SpecialTokenTexts.EndOfText];
    }

    /// <summary>
    /// Loads the tokenizer of a checkpoint directory: <c>tokenizer.json</c> when present, otherwise <c>vocab.json</c>
    /// and <c>merges.txt</c> (a leading <c>#version</c> line skipped, merge rank = line order). Added tokens come from
    /// <c>tokenizer.json</c>'s <c>added_tokens</c> and <c>tokenizer_config.json</c>'s <c>added_tokens_decoder</c>;
    /// <c>&lt;|endoftext|&gt;</c>, <c>&lt;|im_start|&gt;</c> and <c>&lt;|im_end|&gt;</c> are appended after the
    /// highest id when no file names them (for Qwen2's bare vocab.json of 151,643 tokens: ids 151643–151645).
    /// A <c>tokenizer.json</c> must describe a byte-level BPE with Qwen2's pre-tokeniser (or a lone ByteLevel step
    /// without regex, which does not split) and an NFC or no normaliser; <c>vocab.json</c> + <c>merges.txt</c> get
    /// Qwen2's NFC and pre-tokeniser.
    /// </summary>
    /// <exception cref="LlgbmException">The files are missing, malformed or describe an unsupported tokenizer.</exception>
    public static Qwen2Tokenizer Load(string directory)
    {
        var json = Path.Combine(directory, TokenizerFiles.TokenizerJsonName);
        if (File.Exists(json))
            return FromTokenizerJson(TokenizerFiles.ReadTokenizerJson(json), directory);
        var vocab = Path.Combine(directory, TokenizerFiles.VocabName);
        var merges = Path.Combine(directory, TokenizerFiles.MergesName);
        if (!File.Exists(vocab) || !File.Exists(merges))
            throw new LlgbmException(Tokenizers.MissingFilesMessage(directory));
        var added = ConfigAddedTokens(directory, new Dictionary<string, int>());
        return new Qwen2Tokenizer(
            TokenizerFiles.ReadVocabJson(vocab), TokenizerFiles.ReadMergesTxt(merges), added, nfc: true, split: true, $"{vocab} + {merges}");
    }

    /// <summary>The tokenizer of a parsed <c>tokenizer.json</c> (with the added tokens of the directory's <c>tokenizer_config.json</c>).</summary>
    internal static Qwen2Tokenizer FromTokenizerJson(TokenizerJson file, string directory) =>
        new(file.Vocabulary, file.Merges, ConfigAddedTokens(directory, file.AddedTokens), file.Nfc, file.SplitsLikeQwen2, file.Path);

    /// <summary>
    /// Creates a tokenizer from a vocabulary (byte-level symbols → ids, see <see cref="ByteLevelAlphabet"/>), merges in
    /// rank order (each pair's concatenation must be in the vocabulary) and added tokens (text → id), with Qwen2's
    /// pre-tokeniser and, when <paramref name="nfc"/>, NFC normalisation. <c>&lt;|endoftext|&gt;</c>,
    /// <c>&lt;|im_start|&gt;</c> and <c>&lt;|im_end|&gt;</c> are appended after the highest id when missing.
    /// </summary>
    public static Qwen2Tokenizer Create(
        IReadOnlyDictionary<string, int> vocabulary,
        IEnumerable<(string Left, string Right)> merges,
        IReadOnlyDictionary<string, int>? addedTokens = null,
        bool nfc = true) =>
        new(vocabulary, merges.ToList(), addedTokens ?? new Dictionary<string, int>(), nfc, split: true, "the given vocabulary");

    /// <summary>Whether text is normalised to NFC before it is split (Qwen2: yes).</summary>
    public bool NormalizesToNfc { get; }

    /// <inheritdoc/>
    public int VocabSize { get; }

    /// <summary>
    /// All added tokens by their text, special or not (Qwen2.5's <c>&lt;tool_call&gt;</c> is marked non-special but, as
    /// in Hugging Face <c>tokenizers</c>, is still recognised in the text as one id).
    /// </summary>
    public IReadOnlyDictionary<string, int> SpecialTokens => added;

    /// <inheritdoc/>
    public int EndOfTextId { get; }

    /// <inheritdoc/>
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        foreach (var (start, length, id) in matcher.Split(text))
        {
            if (id is { } special)
            {
                ids.Add(special);
                continue;
            }
            var piece = text.Substring(start, length);
            if (NormalizesToNfc)
                piece = Nfc(piece);
            ids.AddRange(bpe.EncodeToIds(piece, considerPreTokenization: true, considerNormalization: false));
        }
        return ids;
    }

    /// <inheritdoc/>
    /// <exception cref="LlgbmException">An id is neither in the vocabulary nor an added token.</exception>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            if (addedById.TryGetValue(id, out var special))
                bytes.AddRange(Encoding.UTF8.GetBytes(special));
            else if (symbolsById.TryGetValue(id, out var symbols))
            {
                // Like Hugging Face's ByteLevel decoder: a token with a character outside the alphabet is kept as text.
                if (!ByteLevelAlphabet.TryDecode(symbols, bytes))
                    bytes.AddRange(Encoding.UTF8.GetBytes(symbols));
            }
            else
                throw new LlgbmException($"token id {id} is not in the tokenizer of {source} (ids 0..{VocabSize - 1}).");
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>
    /// The NFC form of <paramref name="text"/>; a lone surrogate (which has no UTF-8 form and which .NET's normaliser
    /// rejects) becomes U+FFFD first.
    /// </summary>
    internal static string Nfc(string text)
    {
        if (text.Any(char.IsSurrogate))
        {
            var builder = new StringBuilder(text.Length);
            foreach (var rune in EnumerateRunesLossy(text))
                builder.Append(rune.ToString());
            text = builder.ToString();
        }
        return text.IsNormalized(NormalizationForm.FormC) ? text : text.Normalize(NormalizationForm.FormC);
    }

    static IEnumerable<Rune> EnumerateRunesLossy(string text)
    {
        for (var i = 0; i < text.Length;)
        {
            Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var length);
            yield return rune;
            i += length;
        }
    }

    static Dictionary<string, int> ConfigAddedTokens(string directory, IReadOnlyDictionary<string, int> fromTokenizerJson)
    {
        var added = new Dictionary<string, int>(fromTokenizerJson, StringComparer.Ordinal);
        var config = Path.Combine(directory, TokenizerFiles.ConfigName);
        if (File.Exists(config))
            TokenizerFiles.Merge(added, TokenizerFiles.ReadConfigAddedTokens(config), config);
        return added;
    }

    static Dictionary<string, int> WithChatMLTokens(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyDictionary<string, int> addedTokens)
    {
        if (vocabulary.Count == 0)
            throw new LlgbmException("a BPE vocabulary needs at least one token.");
        var added = new Dictionary<string, int>(addedTokens, StringComparer.Ordinal);
        var next = Math.Max(vocabulary.Values.Max(), added.Values.DefaultIfEmpty(-1).Max()) + 1;
        foreach (var text in new[] { SpecialTokenTexts.EndOfText, SpecialTokenTexts.ImStart, SpecialTokenTexts.ImEnd })
            if (!added.ContainsKey(text))
                added[text] = vocabulary.TryGetValue(text, out var id) ? id : next++;
        return added;
    }

    /// <summary>The pre-tokeniser of a lone ByteLevel step without regex: the whole text is one piece.</summary>
    sealed class WholeText : PreTokenizer
    {
        public static WholeText Instance { get; } = new();

        public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) =>
            text.Length == 0 ? [] : [(0, text.Length)];

        public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) =>
            text.Length == 0 ? [] : [(0, text.Length)];
    }
}
