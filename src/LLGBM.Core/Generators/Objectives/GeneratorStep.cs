using LLGBM.Lora;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// What the trainer gives a generator for one training microbatch (<see cref="LoraGenerator.TrainingStep"/>): the
/// conditions [N, K, D], the teachers' adapters they should produce (batched), and the teachers' deltas on demand.
/// </summary>
public sealed class GeneratorStepInput(Tensor conditions, LoraSet teacher, Func<Tensor> teacherDeltas, GeneratorConfig config)
{
    /// <summary>The conditions [N, K, D], on the generator's device.</summary>
    public Tensor Conditions { get; } = conditions;

    /// <summary>The teachers' adapters, batched [N, …].</summary>
    public LoraSet Teacher { get; } = teacher;

    /// <summary>The run's configuration (the weight loss and architecture chosen).</summary>
    public GeneratorConfig Config { get; } = config;

    /// <summary>The teachers' deltas [N, delta width] on the conditions' device; the caller disposes them.</summary>
    public Tensor TeacherDeltas() => teacherDeltas();
}

/// <summary>
/// A generator's part of one training microbatch: the generated adapters (the caller disposes them), the token-level
/// weight loss when the generator computes it itself, an auxiliary loss of its own (weighted by λ_aux), and the
/// function that maps generated adapters to deltas when it is not the exact delta embedder.
/// </summary>
public sealed record GeneratorStep(
    LoraSet Generated, Tensor? TokenLoss = null, Tensor? Auxiliary = null, Func<LoraSet, Tensor>? DeltaOf = null);
