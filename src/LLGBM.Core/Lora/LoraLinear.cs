using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>
/// The functional LoRA linear layer: <c>y = x Wᵀ + b + scale · (x Aᵀ) Bᵀ</c> (or <c>+ x ΔWᵀ</c> for a dense module),
/// a pure function of its inputs, so gradients flow into A and B whether they are parameters or outputs of another
/// network. With per-example adapters (A [N, r, in], B [N, out, r]) row n of the batch uses adapter n, or, with k rows
/// per adapter, rows n·k … n·k + k − 1 do (the rows of an adapter are multiplied together, as one matrix).
/// </summary>
public static class LoraLinear
{
    /// <summary>Applies <paramref name="linear"/> to <paramref name="x"/> [N, T, in] with the optional adapter.</summary>
    public static Tensor Apply(
        Tensor x, Linear linear, LoraModule? adapter, double dropout = 0, bool training = false, int rowsPerAdapter = 1)
    {
        var y = nn.functional.linear(x, linear.weight!, linear.bias);
        return adapter is null ? y : Add(y, x, adapter, dropout, training, rowsPerAdapter);
    }

    /// <summary>
    /// <c>y + scale · (x Aᵀ) Bᵀ</c> (low-rank) or <c>y + x ΔWᵀ</c> (dense) for <paramref name="x"/> [N, T, in]; a fresh
    /// tensor. Per-example adapters apply to <paramref name="rowsPerAdapter"/> consecutive rows each.
    /// </summary>
    public static Tensor Add(Tensor y, Tensor x, LoraModule adapter, double dropout = 0, bool training = false, int rowsPerAdapter = 1)
    {
        using var scope = NewDisposeScope();
        if (adapter.IsBatched && adapter.Count * rowsPerAdapter != x.shape[0])
            throw new LlgbmException(
                $"LoRA: the batch has {x.shape[0]} rows but the adapter holds {adapter.Count} per-example adapters" +
                $"{(rowsPerAdapter > 1 ? $" of {rowsPerAdapter} rows each" : "")}.");
        var input = dropout > 0 && training ? nn.functional.dropout(x, dropout, training) : x;
        // An adapter's rows as one [k · T, in] matrix: one matrix product per adapter instead of one per row.
        if (adapter.IsBatched && rowsPerAdapter > 1)
            input = input.reshape(adapter.Count, -1, input.shape[^1]);
        using var scale = adapter.Scale.ToScalar();
        Tensor update;
        if (adapter.Delta is { } delta)
            update = adapter.IsBatched ? input.bmm(delta.transpose(1, 2)) : input.matmul(delta.T);
        else if (adapter.IsBatched)
            update = input.bmm(adapter.A!.transpose(1, 2)).bmm(adapter.B!.transpose(1, 2)) * scale;
        else
            update = input.matmul(adapter.A!.T).matmul(adapter.B!.T) * scale;
        if (adapter.IsBatched && rowsPerAdapter > 1)
            update = update.reshape(y.shape);
        return y.add(update, OwnedScalars.One).MoveToOuterDisposeScope();
    }
}
