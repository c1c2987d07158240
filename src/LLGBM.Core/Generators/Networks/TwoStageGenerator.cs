using LLGBM.Lora;
using LLGBM.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// The two-stage generator: a small network predicts the task's delta activation δ̂ from the condition (standardised,
/// mean-pooled encodings → MLP → δ̂), and a decoder (a <see cref="HyperMlpGenerator"/> whose condition is one vector, the
/// delta) turns a delta into an adapter. Training fits the predictor to the teachers' deltas and the decoder on the
/// teachers' own deltas (weight loss plus delta consistency Δ(decode(δ)) ≈ δ); generation chains them, so the decoder
/// can also be driven by deltas from elsewhere (sums of deltas, retrieved or transferred ones).
/// </summary>
public sealed class TwoStageGenerator : LoraGenerator, IDeltaStages
{
    /// <summary>Per-feature mean of the training conditions' encodings [D] (a buffer).</summary>
    public readonly Tensor condition_mean;

    /// <summary>Per-feature standard deviation of the training conditions' encodings [D] (a buffer).</summary>
    public readonly Tensor condition_std;

    /// <summary>The predictor: D → H → H → delta width, GELU between layers.</summary>
    public readonly ModuleList<Linear> predictor;

    /// <summary>The decoder from a delta to an adapter.</summary>
    public readonly HyperMlpGenerator decoder;

    /// <summary>A two-stage generator for deltas of width <paramref name="deltaDim"/>.</summary>
    public TwoStageGenerator(GeneratorConfig config, LoraConfig lora, Qwen2Config model, int conditionDim, int deltaDim, long seed, Device? device = null)
        : base(nameof(TwoStageGenerator))
    {
        config.Validate();
        Lora = lora;
        ConditionDim = conditionDim;
        DeltaDim = deltaDim;
        var h = config.HiddenSize;
        using (var _ = no_grad())
        {
            manual_seed(seed ^ 0x7A0);
            condition_mean = zeros(conditionDim);
            condition_std = ones(conditionDim);
            predictor = new ModuleList<Linear>(nn.Linear(conditionDim, h), nn.Linear(h, h), nn.Linear(h, deltaDim));
        }
        decoder = new HyperMlpGenerator(config, lora, model, deltaDim, seed);
        RegisterComponents();
        if (device is not null)
            this.to(device);
    }

    /// <inheritdoc/>
    public override LoraConfig Lora { get; }

    /// <inheritdoc/>
    public override int ConditionDim { get; }

    /// <summary>The width of the deltas the decoder reads.</summary>
    public int DeltaDim { get; }

    /// <inheritdoc/>
    public override void SetConditionStatistics(Tensor mean, Tensor std)
    {
        using var _ = no_grad();
        condition_mean.copy_(mean);
        using var floor = 1e-6.ToScalar();
        condition_std.copy_(std.clamp_min(floor));
    }

    /// <inheritdoc/>
    public override IDeltaStages DeltaStages => this;

    /// <summary>Sets the decoder's standardisation of its input deltas (the training teachers' per-feature mean and std).</summary>
    public void SetDeltaStatistics(Tensor mean, Tensor std) => decoder.SetConditionStatistics(mean, std);

    /// <summary>δ̂ of each condition [N, K, D] → [N, delta width].</summary>
    public Tensor PredictDelta(Tensor conditions)
    {
        if (conditions.dim() != 3 || conditions.shape[2] != ConditionDim)
            throw new LlgbmException($"Two-stage generator: conditions must be [N, K, {ConditionDim}], found [{string.Join(", ", conditions.shape)}].");
        using var scope = NewDisposeScope();
        var x = ((conditions - condition_mean) / condition_std).mean([1]);
        for (var i = 0; i < predictor.Count; i++)
        {
            x = predictor[i].forward(x);
            if (i < predictor.Count - 1)
                x = nn.functional.gelu(x);
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>The adapters of deltas [N, delta width] (batched, owning its tensors).</summary>
    public LoraSet Decode(Tensor deltas)
    {
        if (deltas.dim() != 2 || deltas.shape[1] != DeltaDim)
            throw new LlgbmException($"Two-stage decoder: deltas must be [N, {DeltaDim}], found [{string.Join(", ", deltas.shape)}].");
        return decoder.Generate(deltas.unsqueeze(1));
    }

    /// <inheritdoc/>
    public override LoraSet Generate(Tensor conditions)
    {
        using var scope = NewDisposeScope();
        var set = Decode(PredictDelta(conditions));
        foreach (var t in set.Tensors())
            t.MoveToOuterDisposeScope();
        return set;
    }

    /// <summary>The condition statistics, and the decoder's: the deltas of every training task's teachers.</summary>
    public override void FitStatistics(GeneratorData data)
    {
        base.FitStatistics(data);
        using var deltas = data.Teachers.Deltas([.. data.TrainTasks.SelectMany(t => data.Teachers.ByTask[t.Spec.Name])]);
        using var deltaMean = deltas.mean([0]);
        using var deltaStd = deltas.std([0]);
        SetDeltaStatistics(deltaMean, deltaStd);
    }

    /// <summary>
    /// The predictor learns δ̂ from the condition (the auxiliary loss, relative MSE to the teachers' deltas); the
    /// decoder learns from the teachers' own deltas (the adapters returned are the decoded teacher deltas).
    /// </summary>
    public override GeneratorStep TrainingStep(GeneratorStepInput input)
    {
        if (input.Config.WeightLoss == WeightLossKind.Tokens)
            return base.TrainingStep(input);
        using var target = input.TeacherDeltas();
        var auxiliary = GeneratorTrainer.DeltaTerm(DeltaLossKind.RelativeMse, PredictDelta(input.Conditions), target);
        return new GeneratorStep(Decode(target), Auxiliary: auxiliary);
    }
}
