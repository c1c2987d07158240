using System.Text.Json;
using System.Text.Json.Serialization;
using LLGBM.Tasks;

namespace LLGBM.Generators;

/// <summary>The network that maps a condition to a LoRA set.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<GeneratorArchitecture>))]
public enum GeneratorArchitecture
{
    /// <summary>Text-to-LoRA style: pooled condition + layer and module-type embeddings → shared MLP → per-type heads.</summary>
    HyperMlp,

    /// <summary>Drag-and-Drop style: a cascade of hyper-convolution blocks from [prompts × dims] to the LoRA-token grid.</summary>
    HyperConv,
}

/// <summary>What the weight term compares.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<WeightLossKind>))]
public enum WeightLossKind
{
    /// <summary>ΔW = scale · B · A per module (gauge-invariant), relative to the teacher's ‖ΔW‖².</summary>
    DeltaWeight,

    /// <summary>A and B themselves (mean squared error), as a direct reconstruction loss does.</summary>
    Factors,

    /// <summary>The z-normalised LoRA tokens of Drag-and-Drop LLMs (mean squared error over real entries).</summary>
    Tokens,
}

/// <summary>What the delta term compares.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<DeltaLossKind>))]
public enum DeltaLossKind
{
    /// <summary>Mean squared error divided by the mean squared teacher delta (scale-free).</summary>
    RelativeMse,

    /// <summary>Mean squared error of the L2-normalised deltas.</summary>
    NormalizedMse,

    /// <summary>1 − cosine.</summary>
    Cosine,
}

/// <summary>How the generator is composed.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<GeneratorVariant>))]
public enum GeneratorVariant
{
    /// <summary>Condition → LoRA in one network.</summary>
    Direct,

    /// <summary>Condition → δ̂ (a small network), then δ → LoRA (a decoder trained on teacher deltas).</summary>
    TwoStage,

    /// <summary>Direct, with the delta term taken from a learned head that predicts Δ from the generated weights.</summary>
    DeltaHead,
}

/// <summary>
/// One generator experiment: architecture, conditioning, objective and optimisation. Written into the run directory as
/// <c>config.json</c> (snake_case); the files under <c>configs/</c> are instances of it.
/// </summary>
public sealed record GeneratorConfig
{
    /// <summary>The run's name (its directory under the runs root by default).</summary>
    public string Name { get; init; } = "generator";

    /// <summary>Seed of the initialisation, the task and checkpoint sampling and the prompt batches.</summary>
    public long Seed { get; init; }

    /// <summary>The network.</summary>
    public GeneratorArchitecture Architecture { get; init; } = GeneratorArchitecture.HyperMlp;

    /// <summary>How the network is composed.</summary>
    public GeneratorVariant Variant { get; init; } = GeneratorVariant.Direct;

    /// <summary>
    /// The condition encoder (<see cref="Conditioning.SentenceEncoders"/>): <c>minilm</c> (the frozen pretrained sentence
    /// encoder, the default), <c>lm-mean</c> (the base model's mean-pooled final hidden state) or <c>random</c> (randomly
    /// initialised embeddings; an ablation only).
    /// </summary>
    public string Encoder { get; init; } = "minilm";

    /// <summary>
    /// What a condition holds per example. Prompts with answers by default: in the synthetic suite the tasks of a domain
    /// share their prompt format, so the prompts alone name the domain but not the task.
    /// </summary>
    [JsonConverter(typeof(JsonStringEnumConverter<PromptBatchMode>))]
    public PromptBatchMode ConditionMode { get; init; } = PromptBatchMode.PromptsWithAnswers;

    /// <summary>K: examples per condition (a fresh batch of K distinct training examples at every step).</summary>
    public int ConditionPrompts { get; init; } = 16;

    /// <summary>Training examples per task encoded once and drawn from (the whole split when larger than it).</summary>
    public int ConditionPool { get; init; } = 128;

    /// <summary>Width of the network's hidden layers.</summary>
    public int HiddenSize { get; init; } = 256;

    /// <summary>Width of the layer and module-type embeddings (HyperMLP) and of the condition projection.</summary>
    public int EmbeddingSize { get; init; } = 64;

    /// <summary>Hidden layers of the shared trunk (HyperMLP).</summary>
    public int Depth { get; init; } = 2;

    /// <summary>
    /// Scale of the heads' initial weights relative to the default initialisation: small, so that the first adapters
    /// are close to the initial LoRA in the output biases.
    /// </summary>
    public double HeadInitScale { get; init; } = 0.1;

    /// <summary>HyperConv: (channels, width) after each block; the last block's pair is set by the token grid.</summary>
    public IReadOnlyList<int[]> ConvBlocks { get; init; } = [[64, 256], [256, 128]];

    /// <summary>HyperConv: width of a LoRA token (the chunk width of the tokenisation).</summary>
    public int TokenWidth { get; init; } = 64;

    /// <summary>λ_w, the weight term.</summary>
    public LossWeight Weight { get; init; } = LossWeight.Constant(1);

    /// <summary>What the weight term compares.</summary>
    public WeightLossKind WeightLoss { get; init; } = WeightLossKind.DeltaWeight;

    /// <summary>λ_δ, the delta term (0: never computed in training).</summary>
    public LossWeight Delta { get; init; } = LossWeight.Constant(0);

    /// <summary>
    /// Adapters of each step that enter the delta term (0: all of them). The first ones of the step's random draws are
    /// taken, so the term stays an unbiased estimate of its mean over the step while running the base model fewer times.
    /// </summary>
    public int DeltaAdapters { get; init; }

    /// <summary>
    /// The shuffled-delta control: the training tasks' delta targets are permuted across tasks (seeded), so a delta term
    /// that helps only through task-specific behaviour loses its advantage.
    /// </summary>
    public bool ShuffleDeltas { get; init; }

    /// <summary>What the delta term compares.</summary>
    public DeltaLossKind DeltaLoss { get; init; } = DeltaLossKind.RelativeMse;

    /// <summary>λ_kl, the logit-KL tether to the teacher on the probe prompts.</summary>
    public LossWeight Kl { get; init; } = LossWeight.Constant(0);

    /// <summary>λ_n, the penalty on Σ ‖ΔW‖_F² of the generated adapter.</summary>
    public LossWeight Norm { get; init; } = LossWeight.Constant(0);

    /// <summary>λ of the two-stage predictor's δ̂ regression, and of the delta head's fit to exact deltas.</summary>
    public LossWeight Auxiliary { get; init; } = LossWeight.Constant(1);

    /// <summary>Generic probes of the delta term (the cached teacher deltas must use the same probes).</summary>
    public int Probes { get; init; } = 5;

    /// <summary>
    /// The kind of delta the generator is supervised with: the delta term's targets, the two-stage predictor's δ̂ targets
    /// and its decoder's inputs. <c>Activation</c> (the default): the base model's hidden-state shift on the
    /// <see cref="Probes"/> generic probes, of the backbone's width. <c>Meaning</c>: the shift in log-probability per
    /// UTF-8 byte of the training tasks' right answers (<see cref="MeaningProbesPerTask"/> pairs per training task, a
    /// fixed draw), one coordinate per text pair, so that runs on backbones of different width, depth and tokenizer
    /// read and write deltas of the same coordinates.
    /// </summary>
    [JsonConverter(typeof(JsonStringEnumConverter<LLGBM.Delta.DeltaKind>))]
    public LLGBM.Delta.DeltaKind DeltaKind { get; init; } = LLGBM.Delta.DeltaKind.Activation;

    /// <summary>With <see cref="DeltaKind"/> <c>Meaning</c>: (prompt, right answer) pairs drawn from each training task.</summary>
    public int MeaningProbesPerTask { get; init; } = 2;

    /// <summary>Optimiser steps.</summary>
    public int Steps { get; init; } = 300;

    /// <summary>Adapters generated per step (each for a task, a prompt batch and a teacher checkpoint drawn at random).</summary>
    public int AdaptersPerStep { get; init; } = 8;

    /// <summary>Adapters per forward/backward pass; the step accumulates the gradients of its microbatches.</summary>
    public int Microbatch { get; init; } = 8;

    /// <summary>Peak learning rate (AdamW, linear warm-up, cosine decay to a tenth).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 20;

    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Gradient-norm clipping threshold.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>The suite split whose training tasks the generator learns from and whose test tasks it is evaluated on.</summary>
    public string Split { get; init; } = "default";

    /// <summary>When set, the training tasks instead of the split's (for low-data experiments and small tests).</summary>
    public IReadOnlyList<string>? TrainTasks { get; init; }

    /// <summary>When set, the held-out tasks instead of the split's.</summary>
    public IReadOnlyList<string>? TestTasks { get; init; }

    /// <summary>
    /// The low-data regime: the fraction of the training tasks kept (<see cref="LowDataTasks.Subset"/>: every domain
    /// keeps at least one; 1: all). The training tasks left out are evaluated with the held-out tasks, so the run reports
    /// how it does on the tasks it trained on, on training tasks it did not see, and on the held-out tasks.
    /// </summary>
    public double TrainFraction { get; init; } = 1;

    /// <summary>Teacher checkpoints used per task: the last N of each teacher (0: every checkpoint kept in the pool).</summary>
    public int TeacherCheckpoints { get; init; }

    /// <summary>Steps between logged metrics.</summary>
    public int LogEvery { get; init; } = 10;

    /// <summary>Steps between held-out evaluations and condition-sensitivity measurements (0: only at the end).</summary>
    public int EvalEvery { get; init; } = 100;

    /// <summary>Steps between checkpoints.</summary>
    public int CheckpointEvery { get; init; } = 50;

    /// <summary>Prompt batches (conditions) per task in evaluation.</summary>
    public int EvalBatches { get; init; } = 3;

    /// <summary>Training tasks also evaluated (in-domain: fresh conditions, test examples), spread over the task list.</summary>
    public int InDomainTasks { get; init; } = 5;

    /// <summary>Test examples per task and condition in evaluation.</summary>
    public int EvalLimit { get; init; } = 50;

    /// <summary>The JSON settings of configs (<see cref="LlgbmJson.Config"/>).</summary>
    public static JsonSerializerOptions JsonOptions => LlgbmJson.Config;

    /// <summary>Reads a config file; unknown keys and bad values are errors naming the file.</summary>
    public static GeneratorConfig Load(string file)
    {
        if (!File.Exists(file))
            throw new LlgbmException($"Generator config {file}: the file does not exist.");
        GeneratorConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<GeneratorConfig>(TextFiles.ReadAllText(file), JsonOptions);
        }
        catch (JsonException e)
        {
            throw new LlgbmException($"Generator config {file}: {e.Message}");
        }
        if (config is null)
            throw new LlgbmException($"Generator config {file}: expected a JSON object.");
        try
        {
            return config.Validate();
        }
        catch (LlgbmException e)
        {
            throw new LlgbmException($"{file}: {e.Message}");
        }
    }

    /// <summary>The config as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Throws a <see cref="LlgbmException"/> naming the first invalid field; returns this.</summary>
    public GeneratorConfig Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok)
                throw new LlgbmException($"Generator config: {message}");
        }
        Check(
            PathNames.Problem(Name) is null,
            $"name {PathNames.Quote(Name)} must be a usable directory name: {PathNames.Problem(Name)} (a name is not \".\" or \"..\" and holds no '/', " +
            $"'\\' or control characters).");
        Check(
            Conditioning.SentenceEncoders.Names.Contains(Encoder),
            $"encoder \"{Encoder}\" must be one of {string.Join(", ", Conditioning.SentenceEncoders.Names)}.");
        Check(
            ConditionPrompts >= 2, $"condition_prompts ({ConditionPrompts}) must be at least 2: a condition is a batch of K ≥ 2 examples, never one prompt.");
        Check(ConditionPool >= ConditionPrompts, $"condition_pool ({ConditionPool}) must be at least condition_prompts ({ConditionPrompts}).");
        Check(HiddenSize >= 1 && EmbeddingSize >= 1 && Depth >= 1, "hidden_size, embedding_size and depth must be positive.");
        Check(HeadInitScale >= 0 && double.IsFinite(HeadInitScale), $"head_init_scale ({HeadInitScale}) must be finite and non-negative.");
        Check(
            ConvBlocks.Count >= 1 && ConvBlocks.All(b => b.Length == 2 && b[0] >= 1 && b[1] >= 1),
            "conv_blocks must be a non-empty list of [channels, width] pairs of positive numbers.");
        Check(TokenWidth >= 1, $"token_width ({TokenWidth}) must be positive.");
        Weight.Validate("weight");
        Delta.Validate("delta");
        Kl.Validate("kl");
        Norm.Validate("norm");
        Auxiliary.Validate("auxiliary");
        Check(!(Weight.IsOff && Delta.IsOff && Kl.IsOff), "weight, delta and kl are all zero: nothing would train the generator.");
        Check(Variant != GeneratorVariant.DeltaHead || !Delta.IsOff, "the delta-head variant needs a delta weight above zero.");
        Check(WeightLoss != WeightLossKind.Tokens || (Architecture == GeneratorArchitecture.HyperConv && Variant != GeneratorVariant.TwoStage),
            "weight_loss Tokens compares LoRA-token grids: it needs the HyperConv architecture and a variant other than TwoStage.");
        Check(DeltaAdapters >= 0, $"delta_adapters ({DeltaAdapters}) cannot be negative.");
        Check(Probes >= 1, $"probes ({Probes}) must be at least 1.");
        Check(Enum.IsDefined(DeltaKind), $"delta_kind ({(int)DeltaKind}) must be Activation or Meaning.");
        Check(MeaningProbesPerTask >= 1, $"meaning_probes_per_task ({MeaningProbesPerTask}) must be at least 1.");
        Check(Steps >= 1 && AdaptersPerStep >= 1 && Microbatch >= 1, "steps, adapters_per_step and microbatch must be positive.");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), $"learning_rate ({LearningRate}) must be positive.");
        Check(WarmupSteps >= 0 && WeightDecay >= 0 && ClipNorm > 0, "warmup_steps and weight_decay must be non-negative and clip_norm positive.");
        Check(TrainTasks is null || TrainTasks.Count >= 1, "train_tasks, when given, must name at least one task.");
        Check(TestTasks is null || TestTasks.Count >= 1, "test_tasks, when given, must name at least one task.");
        Check(TrainFraction > 0 && TrainFraction <= 1, $"train_fraction ({TrainFraction}) must be in (0, 1].");
        Check(TeacherCheckpoints >= 0, $"teacher_checkpoints ({TeacherCheckpoints}) cannot be negative (0 uses every checkpoint).");
        Check(LogEvery >= 1 && EvalEvery >= 0 && CheckpointEvery >= 1, "log_every and checkpoint_every must be positive, eval_every non-negative.");
        Check(InDomainTasks >= 0, $"in_domain_tasks ({InDomainTasks}) cannot be negative.");
        Check(EvalBatches >= 1 && EvalLimit >= 1, "eval_batches and eval_limit must be positive.");
        return this;
    }
}
