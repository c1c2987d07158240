using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>A condition encoder as the generator sees it: an identity recorded with the run and texts → [n, D] encodings.</summary>
/// <param name="Identity">Names the encoder and its weights (recorded in <c>run.json</c>; a run is resumed and used only with the same one).</param>
/// <param name="Encode">Encodes texts into float32 rows, without gradients.</param>
public sealed record ConditionEncoding(string Identity, Func<IReadOnlyList<string>, Tensor> Encode)
{
    /// <summary>The encoding of a sentence encoder (which the caller keeps alive and disposes).</summary>
    public static ConditionEncoding From(Conditioning.ISentenceEncoder encoder) => new(encoder.Identity, encoder.Encode);
}
