using LLGBM.Lora;
using static TorchSharp.torch;

namespace LLGBM.Teachers;

/// <summary>
/// How a teacher LoRA is trained on one task: LoRA SFT on bare prompts with the loss on the answer only, AdamW with
/// warm-up and cosine decay, gradient clipping; <see cref="Checkpoints"/> adapters are kept along the tail of the run,
/// one every <see cref="Every"/> steps, ending at the last step (as Drag-and-Drop LLMs collects its training
/// checkpoints).
/// </summary>
public sealed record TeacherTrainingSettings
{
    /// <summary>The adapter's shape: by default r 8, alpha 16 on q, k, v, gate, up, down (the Delta Activations teachers).</summary>
    public LoraConfig Lora { get; init; } = new() { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"] };

    /// <summary>Optimiser steps.</summary>
    public int Steps { get; init; } = 600;

    /// <summary>Examples per step.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 30;

    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Gradient-norm clipping threshold.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>Adapters kept per task.</summary>
    public int Checkpoints { get; init; } = 5;

    /// <summary>Steps between kept adapters.</summary>
    public int Every { get; init; } = 10;

    /// <summary>Seed of the adapter's initialisation and the example order (combined with the task name).</summary>
    public long Seed { get; init; }

    /// <summary>
    /// How the teachers' A factors start: <see cref="TeacherInitialisation.PerTask"/> (each task its own seeded draw),
    /// <see cref="TeacherInitialisation.Shared"/> (one draw from <see cref="Seed"/> for every task of the pool, so that
    /// neighbouring tasks' adapters share their starting subspace), or <see cref="TeacherInitialisation.SharedFrozen"/>
    /// (that shared A is never trained: LoRA-FA, Zhang et al., arXiv 2308.03303; only B learns).
    /// </summary>
    public TeacherInitialisation Initialisation { get; init; } = TeacherInitialisation.PerTask;

    /// <summary>Test examples per kept adapter in its accuracy check (bare prompts).</summary>
    public int EvaluationLimit { get; init; } = 100;

    /// <summary>Where to train (not part of <see cref="Key"/>).</summary>
    public Device Device { get; init; } = CPU;

    /// <summary>The seed of the initial adapter of <paramref name="task"/>: its own, or the pool's shared one.</summary>
    public int InitialisationSeed(string task) =>
        Initialisation == TeacherInitialisation.PerTask
            ? Tasks.Synthetic.SyntheticSuite.TaskSeed(Seed, task)
            : Tasks.Synthetic.SyntheticSuite.TaskSeed(Seed, SharedInitialisationName);

    /// <summary>The name the shared initialisation's seed is derived with (no task has it).</summary>
    public const string SharedInitialisationName = "(shared initialisation)";

    /// <summary>Whether A is trained (all but <see cref="TeacherInitialisation.SharedFrozen"/>).</summary>
    public bool TrainsA => Initialisation != TeacherInitialisation.SharedFrozen;

    /// <summary>The steps at which adapters are kept.</summary>
    public IReadOnlyList<int> CheckpointSteps() =>
        Enumerable.Range(0, Checkpoints).Select(j => Steps - (Checkpoints - 1 - j) * Every).ToList();

    /// <summary>Throws a <see cref="LlgbmException"/> naming the first invalid field.</summary>
    public TeacherTrainingSettings Validate()
    {
        if (Steps <= 0 || BatchSize <= 0)
            throw new LlgbmException($"Teacher training: steps ({Steps}) and batch size ({BatchSize}) must be positive.");
        if (Checkpoints <= 0 || Every <= 0)
            throw new LlgbmException($"Teacher training: --checkpoints ({Checkpoints}) and --every ({Every}) must be positive.");
        if ((Checkpoints - 1) * Every >= Steps)
            throw new LlgbmException(
                $"Teacher training: {Checkpoints} checkpoints every {Every} steps need more than {(Checkpoints - 1) * Every} steps; found {Steps}.");
        Lora.Validate();
        return this;
    }

    /// <summary>A text identifying everything that determines the trained adapters (not the device).</summary>
    public string Key() =>
        $"lora r={Lora.Rank} alpha={Lora.Alpha} rs={Lora.UseRsLora} dropout={Lora.Dropout} targets={string.Join(',', Lora.TargetModules)} " +
        $"layers={(Lora.Layers is null ? "all" : string.Join(',', Lora.Layers))} steps={Steps} batch={BatchSize} lr={LearningRate} " +
        $"warmup={WarmupSteps} wd={WeightDecay} clip={ClipNorm} checkpoints={Checkpoints} every={Every} seed={Seed} eval={EvaluationLimit}" +
        (Initialisation == TeacherInitialisation.PerTask ? "" : $" init={Initialisation}");
}

/// <summary>How the teachers of a pool start (<see cref="TeacherTrainingSettings.Initialisation"/>).</summary>
public enum TeacherInitialisation
{
    /// <summary>Each task draws its own A.</summary>
    PerTask,

    /// <summary>Every task starts from one A drawn once for the pool.</summary>
    Shared,

    /// <summary>Every task uses one A drawn once for the pool and never trains it (LoRA-FA).</summary>
    SharedFrozen,
}
