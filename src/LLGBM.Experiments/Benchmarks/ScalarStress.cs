using LLGBM.Checkpoints;
using LLGBM.Delta;
using LLGBM.Lora;
using LLGBM.Model;
using LLGBM.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Experiments.Benchmarks;

/// <summary>What <see cref="ScalarStress.Run"/> did: rounds of each kind and the collections forced meanwhile.</summary>
public sealed record ScalarStressResult(int Rounds, int Forwards, int Generations, int TrainingSteps, int Collections, double Seconds);

/// <summary>
/// The scalar-lifetime stress: forward passes (with a LoRA set), sampled generation (temperature, top-k, top-p) and a
/// training step of the adapter losses (logit KL, adapter norm, delta cosine and normalised MSE, backward) and three
/// steps of the trainers' optimiser (<see cref="AdamWWithOwnedScalars"/>) in a loop
/// on a random-weight model, while another thread runs <c>GC.Collect(); GC.WaitForPendingFinalizers()</c> without
/// pause. A scalar made from a number with no owner can then be finalized while libtorch still reads it; that shows as
/// a native assert, a crash, or an output that differs from the one computed before the collector started — every
/// round is compared with it bit for bit, and a difference is an error naming the round and the part.
/// </summary>
public static class ScalarStress
{
    /// <summary>
    /// Runs rounds on the <paramref name="preset"/> architecture until <paramref name="seconds"/> have passed and at
    /// least <paramref name="minRounds"/> rounds ran.
    /// </summary>
    public static ScalarStressResult Run(string preset, double seconds, Action<string>? progress = null, long seed = 0, int minRounds = 1)
    {
        if (!(seconds > 0))
            throw new LlgbmException($"Scalar stress: --seconds must be positive, found {seconds}.");
        var config = Qwen2Presets.Get(preset);
        using var model = new Qwen2ForCausalLM(config);
        model.InitializeWeights(seed);
        model.eval();
        using var lora = LoraSet.Initialize(new LoraConfig { Rank = 4 }, config, seed + 1);
        using var generator = new Generator((ulong)seed + 2);
        using var ids = randint(config.VocabSize, [2, 12], generator: generator, dtype: ScalarType.Int64);
        using var predicted = randn([4, 32], generator: generator);
        using var target = randn([4, 32], generator: generator);
        IReadOnlyList<IReadOnlyList<int>> prompts = [[1, 2, 3, 4], [5, 6, 7]];
        var options = new GenerationOptions { MaxNewTokens = 4, Temperature = 0.8, TopK = 20, TopP = 0.9, Seed = seed };

        var expected = Round(model, lora, ids, prompts, options, predicted, target);
        using var stop = new CancellationTokenSource();
        var collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref collections);
            }
        })
        { IsBackground = true, Name = "scalar-stress collector" };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        collector.Start();
        var rounds = 0;
        try
        {
            while (clock.Elapsed.TotalSeconds < seconds || rounds < minRounds)
            {
                var got = Round(model, lora, ids, prompts, options, predicted, target);
                rounds++;
                if (!got.Logits.SequenceEqual(expected.Logits))
                    throw new LlgbmException($"Scalar stress: round {rounds}: the forward logits differ from the first pass.");
                if (!got.Tokens.SequenceEqual(expected.Tokens))
                    throw new LlgbmException($"Scalar stress: round {rounds}: the generated tokens differ from the first generation.");
                if (got.Loss != expected.Loss)
                    throw new LlgbmException($"Scalar stress: round {rounds}: the training loss {got.Loss} differs from the first step's {expected.Loss}.");
                if (!got.Stepped.SequenceEqual(expected.Stepped))
                    throw new LlgbmException($"Scalar stress: round {rounds}: the optimiser's steps reached other values than in the first round.");
                if (rounds % 50 == 0)
                    progress?.Invoke($"{rounds} rounds, {Volatile.Read(ref collections)} collections, {clock.Elapsed.TotalSeconds:F0} s");
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        return new ScalarStressResult(rounds, rounds, rounds, rounds, collections, clock.Elapsed.TotalSeconds);
    }

    sealed record Outcome(float[] Logits, int[] Tokens, double Loss, float[] Stepped);

    // Three AdamW steps (the trainers' optimiser) on a fresh copy of predicted towards target; the values reached.
    static float[] OptimizerSteps(Tensor predicted, Tensor target)
    {
        using var scope = NewDisposeScope();
        using var moving = new TorchSharp.Modules.Parameter(predicted.clone());
        using var optimizer = new AdamWWithOwnedScalars([moving], lr: 0.01, weight_decay: 0.01);
        for (var step = 0; step < 3; step++)
        {
            optimizer.zero_grad();
            DeltaLosses.NormalizedMse(moving, target).backward();
            optimizer.step();
        }
        return moving.detach().data<float>().ToArray();
    }

    static Outcome Round(
        Qwen2ForCausalLM model, LoraSet lora, Tensor ids, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options,
        Tensor predicted, Tensor target)
    {
        using var scope = NewDisposeScope();
        float[] logits;
        using (no_grad())
            logits = model.Forward(ids, new ForwardOptions { Lora = lora }).Logits!.cpu().data<float>().ToArray();
        var tokens = TextGeneration.Generate(model, prompts, options).SelectMany(t => t).ToArray();

        foreach (var p in lora.Parameters())
            p.grad?.zero_();
        Tensor teacher;
        using (no_grad())
            teacher = model.Forward(ids).Logits!;
        var student = model.Forward(ids, new ForwardOptions { Lora = lora }).Logits!;
        var loss = LogitKl.Divergence(student, teacher, temperature: 2.0)
            .add(AdapterNorm.Penalty(lora), OwnedScalars.One)
            .add(DeltaLosses.CosineDistance(predicted, target), OwnedScalars.One)
            .add(DeltaLosses.NormalizedMse(predicted, target), OwnedScalars.One);
        loss.backward();
        return new Outcome(logits, tokens, loss.item<float>(), OptimizerSteps(predicted, target));
    }
}
