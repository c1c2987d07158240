using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>
/// The functional LoRA linear layer: <c>y = x Wᵀ + b + scale · (x Aᵀ) Bᵀ</c> (or <c>+ x ΔWᵀ</c> for a dense module),
/// a pure function of its inputs, so gradients flow into A and B whether they are parameters or outputs of another
/// network. With per-example adapters (A [N, r, in], B [N, out, r]) row n of the batch uses adapter n.
/// </summary>
public static class LoraLinear
{
    /// <summary>Applies <paramref name="linear"/> to <paramref name="x"/> [N, T, in] with the optional adapter.</summary>
    public static Tensor Apply(Tensor x, Linear linear, LoraModule? adapter, double dropout = 0, bool training = false)
    {
        var y = nn.functional.linear(x, linear.weight!, linear.bias);
        return adapter is null ? y : Add(y, x, adapter, dropout, training);
    }

    /// <summary>
    /// <c>y + scale · (x Aᵀ) Bᵀ</c> (low-rank) or <c>y + x ΔWᵀ</c> (dense) for <paramref name="x"/> [N, T, in]; a fresh
    /// tensor.
    /// </summary>
    public static Tensor Add(Tensor y, Tensor x, LoraModule adapter, double dropout = 0, bool training = false)
    {
        using var scope = NewDisposeScope();
        if (adapter.IsBatched && adapter.Count != x.shape[0])
            throw new LlgbmException($"LoRA: the batch has {x.shape[0]} rows but the adapter holds {adapter.Count} per-example adapters.");
        var input = dropout > 0 && training ? nn.functional.dropout(x, dropout, training) : x;
        using var scale = adapter.Scale.ToScalar();
        Tensor update;
        if (adapter.Delta is { } delta)
            update = adapter.IsBatched ? input.bmm(delta.transpose(1, 2)) : input.matmul(delta.T);
        else if (adapter.IsBatched)
            update = input.bmm(adapter.A!.transpose(1, 2)).bmm(adapter.B!.transpose(1, 2)) * scale;
        else
            update = input.matmul(adapter.A!.T).matmul(adapter.B!.T) * scale;
        return y.add(update, OwnedScalars.One).MoveToOuterDisposeScope();
    }
}
