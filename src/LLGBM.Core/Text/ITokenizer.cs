namespace LLGBM.Text;

/// <summary>
/// Turns text into token ids and back. Encoding adds no special tokens of its own (no BOS/EOS), but special tokens
/// written in the text (such as <c>&lt;|im_start|&gt;</c>) are recognised as single ids.
/// </summary>
public interface ITokenizer
{
    /// <summary>Ids of <paramref name="text"/>, without added special tokens.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>The text of <paramref name="ids"/> (special tokens written out as their text).</summary>
    string Decode(IEnumerable<int> ids);

    /// <summary>Number of ids the tokenizer can produce (regular and special); at most the model's vocabulary.</summary>
    int VocabSize { get; }

    /// <summary>The special tokens by their text, e.g. <c>&lt;|endoftext|&gt;</c> → 151643.</summary>
    IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>The id that ends a sequence (for Qwen2: <c>&lt;|endoftext|&gt;</c>).</summary>
    int EndOfTextId { get; }
}
