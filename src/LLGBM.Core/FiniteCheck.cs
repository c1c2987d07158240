using System.Globalization;
using static TorchSharp.torch;

namespace LLGBM;

/// <summary>
/// Checks that tensors and numbers hold no NaN or ±infinity. A tensor check is one <c>isfinite().all()</c> in the
/// tensor's own dtype and on its own device (a boolean temporary, no copy of the values); the counts and the first
/// offending index of the message are only computed when the check fails. Integer and boolean tensors always pass.
/// </summary>
public static class FiniteCheck
{
    /// <summary>Whether every element of <paramref name="tensor"/> is finite.</summary>
    public static bool AllFinite(Tensor tensor)
    {
        if (!tensor.is_floating_point() && !tensor.is_complex())
            return true;
        using var noGrad = no_grad();
        using var finite = tensor.isfinite();
        using var all = finite.all();
        return all.item<bool>();
    }

    /// <summary>Throws a <see cref="NonFiniteException"/> naming <paramref name="subject"/> when <paramref name="tensor"/> holds NaN or ±infinity.</summary>
    /// <param name="tensor">The tensor to check; neither changed nor disposed.</param>
    /// <param name="subject">What the tensor is, naming the file and tensor where there is one, e.g. "'x/model.safetensors': tensor 'lm_head.weight'".</param>
    public static void Tensor(Tensor tensor, string subject)
    {
        if (!AllFinite(tensor))
            throw new NonFiniteException(subject, Describe(tensor));
    }

    /// <summary>Throws a <see cref="NonFiniteException"/> naming <paramref name="subject"/> when <paramref name="value"/> is NaN or ±infinity; returns it
    /// otherwise.</summary>
    public static double Number(double value, string subject) =>
        double.IsFinite(value) ? value : throw new NonFiniteException(subject, Name(value));

    /// <summary>The counts of NaN, +∞ and −∞ among the values of <paramref name="tensor"/> and the index of the first of them.</summary>
    static string Describe(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var values = tensor.is_complex() ? tensor.abs() : tensor;
        var nan = values.isnan().sum().item<long>();
        var positive = values.isposinf().sum().item<long>();
        var negative = values.isneginf().sum().item<long>();
        var kinds = new List<string>();
        if (nan > 0)
            kinds.Add(string.Create(CultureInfo.InvariantCulture, $"{nan:N0} NaN"));
        if (positive > 0)
            kinds.Add(string.Create(CultureInfo.InvariantCulture, $"{positive:N0} +∞"));
        if (negative > 0)
            kinds.Add(string.Create(CultureInfo.InvariantCulture, $"{negative:N0} −∞"));
        var first = values.isfinite().logical_not().flatten().nonzero()[0, 0].item<long>();
        return string.Create(CultureInfo.InvariantCulture,
            $"{string.Join(", ", kinds)} of {tensor.numel():N0} values (first at {Index(first, tensor.shape)})");
    }

    /// <summary>The multi-index, e.g. "[2, 5]", of the flat (row-major) position <paramref name="flat"/>.</summary>
    static string Index(long flat, long[] shape)
    {
        if (shape.Length == 0)
            return "[]";
        var index = new long[shape.Length];
        for (var d = shape.Length - 1; d >= 0; d--)
        {
            index[d] = flat % shape[d];
            flat /= shape[d];
        }
        return $"[{string.Join(", ", index)}]";
    }

    static string Name(double value) => double.IsNaN(value) ? "the value NaN" : value > 0 ? "the value +∞" : "the value −∞";
}
