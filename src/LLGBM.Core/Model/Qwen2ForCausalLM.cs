using LLGBM.Model.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Model;

/// <summary>
/// A Qwen2 causal language model (transformers' models/qwen2/modeling_qwen2.py): <c>model</c> (the trunk) and
/// <c>lm_head</c>, which is absent when the embeddings are tied (the head then uses <c>model.embed_tokens.weight</c>).
/// Parameter names equal the Hugging Face checkpoint keys, so checkpoints load strictly by name.
/// </summary>
public sealed class Qwen2ForCausalLM : nn.Module
{
    /// <summary>The trunk.</summary>
    public readonly Qwen2Model model;

    /// <summary>The output head H → V; null when <see cref="Qwen2Config.TieWordEmbeddings"/> is set.</summary>
    public readonly Linear? lm_head;

    /// <summary>The architecture.</summary>
    public Qwen2Config Config { get; }

    /// <summary>The dtype of parameters and computation.</summary>
    public ScalarType Dtype { get; }

    /// <summary>
    /// Creates a model with default-initialised weights (see <see cref="InitializeWeights"/>); a config whose
    /// parameters cannot fit in the memory available is refused first (<see cref="ModelMemory.EnsureFits"/>).
    /// </summary>
    public Qwen2ForCausalLM(Qwen2Config config, Device? device = null, ScalarType dtype = ScalarType.Float32) : base(nameof(Qwen2ForCausalLM))
    {
        Config = config.Validate();
        ModelMemory.EnsureFits(config, dtype, device, "Qwen2 config");
        Dtype = dtype;
        model = new Qwen2Model(config, device, dtype);
        if (!config.TieWordEmbeddings)
            lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <summary>
    /// Loads a Hugging Face checkpoint directory (see <see cref="Checkpoints.Qwen2Checkpoint.Load"/>): weights are
    /// converted to <paramref name="dtype"/> on <paramref name="device"/>, names are matched strictly.
    /// </summary>
    public static Qwen2ForCausalLM FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32) =>
        Checkpoints.Qwen2Checkpoint.Load(directory, device, dtype);

    /// <summary>Writes this model as a Hugging Face checkpoint directory (see <see cref="Checkpoints.Qwen2Checkpoint.Save"/>).</summary>
    public void SavePretrained(string directory, ScalarType? storage = null, long maxShardBytes = long.MaxValue) =>
        Checkpoints.Qwen2Checkpoint.Save(this, directory, storage, maxShardBytes);

    /// <summary>The device holding the parameters.</summary>
    public Device Device
    {
        get
        {
            // Reading a module's weight creates a tensor handle; the scope releases it.
            using var scope = NewDisposeScope();
            return model.embed_tokens.weight!.device;
        }
    }

    /// <summary>
    /// Re-initialises every parameter as Hugging Face does for fresh Qwen2 models: linear and embedding weights
    /// N(0, 0.02), biases 0, norm weights 1. Deterministic for a given seed.
    /// </summary>
    public void InitializeWeights(long seed, double std = 0.02)
    {
        using var noGrad = no_grad();
        var generator = new Generator((ulong)seed, device: Device.type == DeviceType.CUDA ? Device : null);
        using var one = 1.0.ToScalar();
        foreach (var (name, parameter) in named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal))
                parameter.fill_(one);
            else if (name.EndsWith(".bias", StringComparison.Ordinal))
                parameter.zero_();
            else
                parameter.normal_(0.0, std, generator);
        }
    }

    /// <summary>
    /// Runs the model on token ids [B, T] (int64). Returns the final-norm hidden state, logits where
    /// <see cref="ForwardOptions.Logits"/> asks, and on request every layer's hidden state. Sequences longer (cached
    /// positions included) than <see cref="Qwen2Config.MaxPositionEmbeddings"/> are refused.
    /// </summary>
    public Qwen2Output Forward(Tensor inputIds, ForwardOptions? options = null)
    {
        options ??= new ForwardOptions();
        if (inputIds.dim() != 2)
            throw new LlgbmException($"Forward: input ids must be [batch, length], found shape [{string.Join(", ", inputIds.shape)}].");
        using var scope = NewDisposeScope();
        var (batch, length) = (inputIds.shape[0], inputIds.shape[1]);
        var past = options.Cache?.Length ?? 0;
        if (past + length > Config.MaxPositionEmbeddings)
            throw new LlgbmException(
                $"Forward: the sequence has {past + length} positions ({past} cached, {length} new), " +
                $"more than the max_position_embeddings {Config.MaxPositionEmbeddings} of the model's config.json; shorten the input.");
        var paddingMask = options.AttentionMask;
        if (paddingMask is not null && (paddingMask.dim() != 2 || paddingMask.shape[0] != batch || paddingMask.shape[1] != past + length))
            throw new LlgbmException(
                $"Forward: attention mask must be [{batch}, {past + length}] (batch, cached + new positions), found [{string.Join(", ", paddingMask.shape)}].");

        if (options.Lora is { } lora)
        {
            lora.ValidateFor(Config);
            if (lora.IsBatched && lora.Count * lora.RowsPerAdapter != batch)
                throw new LlgbmException(
                    $"Forward: the LoRA set holds {lora.Count} per-example adapters" +
                    $"{(lora.RowsPerAdapter > 1 ? $" of {lora.RowsPerAdapter} rows each" : "")} but the batch has {batch} rows.");
        }

        var maskForPositions = paddingMask ?? ones(batch, past + length, dtype: ScalarType.Int64, device: inputIds.device);
        var positionIds = options.PositionIds ?? AttentionMasks.PositionIds(maskForPositions, length);
        // Plain causal attention needs no explicit mask unless there is padding or a cache.
        var mask = paddingMask is null && past == 0 ? null : AttentionMasks.Additive(maskForPositions, past, length, Dtype);

        var hidden = model.embed_tokens.forward(inputIds);
        var (cos, sin) = model.rotary_emb.CosSin(positionIds, Dtype);
        var states = options.OutputHiddenStates ? new List<Tensor> { hidden } : null;
        foreach (var layer in model.layers)
        {
            hidden = layer.Forward(hidden, cos, sin, mask, options.Cache, options.Attention, options.Lora);
            states?.Add(hidden);
        }
        var hiddenLast = model.norm.forward(hidden);
        if (states is not null)
            states[^1] = hiddenLast;

        var lastIndex = AttentionMasks.LastRealIndex(maskForPositions, length);
        Tensor? logits = options.Logits switch
        {
            LogitPositions.AllPositions => Head(hiddenLast),
            LogitPositions.LastPosition => Head(hiddenLast.gather(1, lastIndex.view(-1, 1, 1).expand(-1, 1, hiddenLast.shape[2]))),
            LogitPositions.Indexed at => Head(hiddenLast.gather(1, at.Index.unsqueeze(-1).expand(-1, -1, hiddenLast.shape[2]))),
            _ => null,
        };

        return new Qwen2Output
        {
            HiddenLast = hiddenLast.MoveToOuterDisposeScope(),
            Logits = logits?.MoveToOuterDisposeScope(),
            HiddenStates = states?.Select(s => ReferenceEquals(s, hiddenLast) ? s : s.MoveToOuterDisposeScope()).ToList(),
            LastTokenIndex = lastIndex.MoveToOuterDisposeScope(),
        };
    }

    /// <summary>The vocabulary projection of final-norm hidden states.</summary>
    public Tensor Head(Tensor hidden) =>
        lm_head is null ? nn.functional.linear(hidden, model.embed_tokens.weight!) : lm_head.forward(hidden);
}
