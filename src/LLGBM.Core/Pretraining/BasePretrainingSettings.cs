using LLGBM.Model;
using static TorchSharp.torch;

namespace LLGBM.Pretraining;

/// <summary>The recipe of a base model pretrained on instructed task examples. Every field enters the recipe hash.</summary>
public sealed record BasePretrainingSettings
{
    /// <summary>The architecture.</summary>
    public required Qwen2Config Config { get; init; }

    /// <summary>Optimiser steps.</summary>
    public int Steps { get; init; } = 2500;

    /// <summary>Examples per step.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Peak learning rate (AdamW).</summary>
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Linear warm-up steps before the cosine decay.</summary>
    public int WarmupSteps { get; init; } = 100;

    /// <summary>AdamW weight decay.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Gradient-norm clipping threshold.</summary>
    public double ClipNorm { get; init; } = 1.0;

    /// <summary>
    /// Smallest sampling weight of a task relative to its loss, so that tasks already learned keep being rehearsed.
    /// </summary>
    public double SamplingFloor { get; init; } = 0.05;

    /// <summary>Seed of the initialisation and of the example order.</summary>
    public long Seed { get; init; }

    /// <summary>Where to train (not part of the recipe hash: the same recipe on another device is the same model).</summary>
    public Device Device { get; init; } = CPU;
}
