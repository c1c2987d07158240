using LLGBM.Lora;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// A learned surrogate of the delta embedder: a linear map from an adapter's flattened factors (A then B of every
/// module, in the set's module order) to its delta activation. It is fitted to the teachers' (adapter, delta) pairs; the
/// delta-head variant then trains the generator against the head's prediction for the generated adapter (with the
/// head's weights held fixed in that term) instead of running the base model, and logs the exact delta alongside.
/// </summary>
public sealed class DeltaHead : nn.Module<LoraSet, Tensor>
{
    readonly IReadOnlyList<string> paths;

    /// <summary>Flattened factors → delta.</summary>
    public readonly Linear head;

    /// <summary>A head for adapters with <paramref name="paths"/> holding <paramref name="inputs"/> factor entries in all, to deltas of width
    /// <paramref name="deltaDim"/>.</summary>
    public DeltaHead(IReadOnlyList<string> paths, long inputs, int deltaDim, long seed) : base(nameof(DeltaHead))
    {
        this.paths = paths;
        using (var _ = no_grad())
        {
            manual_seed(seed ^ 0xDE17A);
            head = nn.Linear(inputs, deltaDim);
            head.weight!.zero_();
            head.bias!.zero_();
        }
        RegisterComponents();
    }

    /// <summary>The flattened factors of a batched set, [N, inputs].</summary>
    public Tensor Flatten(LoraSet batched)
    {
        var n = batched.Count;
        return cat([.. paths.SelectMany(p => new[] { batched.Modules[p].A!.reshape(n, -1), batched.Modules[p].B!.reshape(n, -1) })], 1);
    }

    /// <summary>The predicted deltas [N, delta width] of a batched set (differentiable in the head and the set).</summary>
    public override Tensor forward(LoraSet batched)
    {
        using var scope = NewDisposeScope();
        return head.forward(Flatten(batched)).MoveToOuterDisposeScope();
    }

    /// <summary>The prediction with the head's weights held fixed: gradients reach the set only.</summary>
    public Tensor Frozen(LoraSet batched)
    {
        using var scope = NewDisposeScope();
        return nn.functional.linear(Flatten(batched), head.weight!.detach(), head.bias!.detach()).MoveToOuterDisposeScope();
    }
}
