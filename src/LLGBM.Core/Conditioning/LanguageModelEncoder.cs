using LLGBM.Checkpoints;
using LLGBM.Model;
using LLGBM.Text;
using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>
/// Encodes texts with the base language model itself: the mean of its final-norm hidden state over the text's tokens,
/// L2 normalised (D = the model's hidden size). Texts are tokenized without special tokens, truncated to the first
/// <see cref="MaxTokens"/> tokens and right-padded into batches with an attention mask, so padding does not change a
/// row. The model runs frozen, under <c>no_grad</c>, as it is (put it in eval mode first; <see cref="FromCheckpoint"/>
/// does).
/// </summary>
public sealed class LanguageModelEncoder : ISentenceEncoder
{
    /// <summary>The encoder's name on command lines.</summary>
    public const string EncoderName = "lm-mean";

    readonly Qwen2ForCausalLM model;
    readonly ITokenizer tokenizer;
    readonly bool ownsModel;

    /// <summary>An encoder over <paramref name="model"/> and <paramref name="tokenizer"/>.</summary>
    /// <param name="model">The base model.</param>
    /// <param name="tokenizer">Its tokenizer.</param>
    /// <param name="modelIdentity">What identifies the model's weights and tokenizer (content hashes); part of <see cref="Identity"/>.</param>
    /// <param name="maxTokens">Tokens kept per text (the first ones; at most the model's max_position_embeddings).</param>
    /// <param name="batchSize">Texts per forward pass.</param>
    /// <param name="ownsModel">Whether <see cref="Dispose"/> disposes the model.</param>
    /// <exception cref="LlgbmException">An argument is out of range.</exception>
    public LanguageModelEncoder(
        Qwen2ForCausalLM model, ITokenizer tokenizer, string modelIdentity, int maxTokens = 512, int batchSize = 16, bool ownsModel = false)
    {
        if (string.IsNullOrWhiteSpace(modelIdentity))
            throw new LlgbmException("LM encoder: the model identity (content hashes of its weights and tokenizer) is empty.");
        if (maxTokens < 1)
            throw new LlgbmException($"LM encoder: at least one token per text must be kept (got {maxTokens}).");
        if (batchSize < 1)
            throw new LlgbmException($"LM encoder: the batch size must be at least 1 (got {batchSize}).");
        this.model = model;
        this.tokenizer = tokenizer;
        this.ownsModel = ownsModel;
        ModelIdentity = modelIdentity;
        MaxTokens = Math.Min(maxTokens, model.Config.MaxPositionEmbeddings);
        BatchSize = batchSize;
    }

    /// <summary>
    /// Loads the checkpoint in <paramref name="directory"/> with its tokenizer, in eval mode; the identity holds the
    /// content hash of its config and weights and of its tokenizer files.
    /// </summary>
    public static LanguageModelEncoder FromCheckpoint(
        string directory, Device? device = null, ScalarType dtype = ScalarType.Float32, int maxTokens = 512, int batchSize = 16)
    {
        if (!Directory.Exists(directory))
            throw new LlgbmException($"{directory}: no such checkpoint directory for the LM encoder.");
        var tokenizer = Tokenizers.Load(directory);
        var identity = $"checkpoint-sha256={ContentHash.OfCheckpoint(directory)} "
            + $"tokenizer-sha256={ContentHash.OfFiles(
                directory, [TokenizerFiles.TokenizerJsonName, TokenizerFiles.VocabName, TokenizerFiles.MergesName, TokenizerFiles.ConfigName])} "
            + $"dtype={Qwen2Checkpoint.DtypeName(dtype)}";
        var model = Qwen2Checkpoint.Load(directory, device, dtype);
        model.eval();
        return new LanguageModelEncoder(model, tokenizer, identity, maxTokens, batchSize, ownsModel: true);
    }

    /// <inheritdoc/>
    public string Name => EncoderName;

    /// <inheritdoc/>
    public int Dimension => model.Config.HiddenSize;

    /// <summary>What identifies the model's weights and tokenizer.</summary>
    public string ModelIdentity { get; }

    /// <summary>Tokens kept per text: the requested number, or the model's max_position_embeddings when that is smaller.</summary>
    public int MaxTokens { get; }

    /// <summary>Texts per forward pass.</summary>
    public int BatchSize { get; }

    /// <inheritdoc/>
    public string Identity => $"{EncoderName}|{ModelIdentity}|max-tokens={MaxTokens}|final-norm mean-pool|l2";

    /// <inheritdoc/>
    public Tensor Encode(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var tokens = new List<int[]>(texts.Count);
        for (var i = 0; i < texts.Count; i++)
        {
            var ids = tokenizer.Encode(texts[i]).Take(MaxTokens).ToArray();
            if (ids.Length == 0)
                throw new LlgbmException($"LM encoder: text {i} of the batch is empty (no tokens to average).");
            tokens.Add(ids);
        }
        if (tokens.Count == 0)
            return zeros([0, Dimension], ScalarType.Float32);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var parts = new List<Tensor>();
        for (var start = 0; start < tokens.Count; start += BatchSize)
            parts.Add(EncodeBatch(tokens.Skip(start).Take(BatchSize).ToList()));
        var result = parts.Count == 1 ? parts[0] : cat(parts, 0);
        return result.to(ScalarType.Float32).cpu().MoveToOuterDisposeScope();
    }

    Tensor EncodeBatch(List<int[]> batch)
    {
        var length = batch.Max(ids => ids.Length);
        var ids = new long[batch.Count * length];
        var mask = new long[batch.Count * length];
        for (var r = 0; r < batch.Count; r++)
            for (var t = 0; t < batch[r].Length; t++)
            {
                ids[r * length + t] = batch[r][t];
                mask[r * length + t] = 1;
            }
        var device = model.Device;
        var idTensor = tensor(ids, [batch.Count, length], device: device);
        var maskTensor = tensor(mask, [batch.Count, length], device: device);
        using var output = model.Forward(idTensor, new ForwardOptions { AttentionMask = maskTensor, Logits = LogitPositions.None });
        var pooled = SentencePooling.MeanPool(output.HiddenLast.to(ScalarType.Float32), maskTensor);
        return SentencePooling.L2Normalize(pooled);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (ownsModel)
            model.Dispose();
    }
}
