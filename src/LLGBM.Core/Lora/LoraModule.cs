using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>
/// The adapter of one linear module: low-rank factors A [r, in] and B [out, r] with a scale (ΔW = scale · B · A), or a
/// dense ΔW [out, in] (for merged adapters that are not low-rank). With a leading batch dimension (A [N, r, in],
/// B [N, out, r], ΔW [N, out, in]) each example of a batch of N gets its own adapter. The tensors belong to whoever
/// made them (parameters of a teacher, outputs of a generator); a <see cref="LoraModule"/> never disposes them.
/// </summary>
public sealed record LoraModule
{
    /// <summary>Down projection A [r, in] or [N, r, in]; null for a dense module.</summary>
    public Tensor? A { get; init; }

    /// <summary>Up projection B [out, r] or [N, out, r]; null for a dense module.</summary>
    public Tensor? B { get; init; }

    /// <summary>Dense ΔW [out, in] or [N, out, in]; null for a low-rank module.</summary>
    public Tensor? Delta { get; init; }

    /// <summary>The scale of the low-rank product (alpha / r, or alpha / √r with rsLoRA); 1 for dense modules.</summary>
    public double Scale { get; init; } = 1.0;

    /// <summary>A low-rank module.</summary>
    public static LoraModule LowRank(Tensor a, Tensor b, double scale) => new() { A = a, B = b, Scale = scale };

    /// <summary>A dense module.</summary>
    public static LoraModule Dense(Tensor delta) => new() { Delta = delta };

    /// <summary>True when the tensors carry a leading per-example dimension.</summary>
    public bool IsBatched => (Delta ?? A!).dim() == 3;

    /// <summary>The number of per-example adapters (1 when not batched).</summary>
    public long Count => IsBatched ? (Delta ?? A!).shape[0] : 1;

    /// <summary>The rank (0 for a dense module).</summary>
    public long Rank => A is null ? 0 : A.shape[^2];

    /// <summary>(out, in) of the module this adapter fits.</summary>
    public (long Out, long In) Shape => Delta is { } d ? (d.shape[^2], d.shape[^1]) : (B!.shape[^2], A!.shape[^1]);

    /// <summary>ΔW = scale · B · A (or the dense ΔW): [out, in] or [N, out, in]. A fresh tensor.</summary>
    public Tensor DeltaWeight()
    {
        if (Delta is { } d)
            return d.clone();
        using var scale = Scale.ToScalar();
        return B!.matmul(A!) * scale;
    }

    /// <summary>Checks internal consistency; <paramref name="path"/> names the module in errors.</summary>
    public void Validate(string path)
    {
        if (Delta is null == (A is null || B is null))
            throw new LlgbmException($"LoRA module {path}: give either A and B, or a dense delta, not both or neither.");
        if (Delta is { } d)
        {
            if (d.dim() is not (2 or 3))
                throw new LlgbmException($"LoRA module {path}: the dense delta must be [out, in] or [N, out, in], found [{string.Join(", ", d.shape)}].");
            return;
        }
        var (a, b) = (A!, B!);
        if (a.dim() != b.dim() || a.dim() is not (2 or 3))
            throw new LlgbmException(
                $"LoRA module {path}: A and B must both be 2-D, or both 3-D with a batch dimension; found A [{string.Join(", ", a.shape)}], " +
                $"B [{string.Join(", ", b.shape)}].");
        if (a.shape[^2] != b.shape[^1])
            throw new LlgbmException(
                $"LoRA module {path}: A [{string.Join(", ", a.shape)}] has rank {a.shape[^2]} but B [{string.Join(", ", b.shape)}] has rank {b.shape[^1]}.");
        if (a.dim() == 3 && a.shape[0] != b.shape[0])
            throw new LlgbmException($"LoRA module {path}: A holds {a.shape[0]} adapters but B holds {b.shape[0]}.");
    }
}
