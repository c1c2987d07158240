using LLGBM.Algebra;
using LLGBM.Evaluation;

namespace LLGBM.Experiments;

/// <summary>
/// One adapter's accuracy on a two-task mixture: on each component's first n test examples, and pooled over both,
/// which is its accuracy on the mixture's first 2n test examples (the mixture's test split interleaves the
/// components', <see cref="Tasks.TaskMixture"/>).
/// </summary>
/// <param name="CorrectFirst">Correct answers on the first component's test examples.</param>
/// <param name="CountFirst">First component's test examples scored.</param>
/// <param name="CorrectSecond">Correct answers on the second component's test examples.</param>
/// <param name="CountSecond">Second component's test examples scored.</param>
public sealed record MixtureScores(int CorrectFirst, int CountFirst, int CorrectSecond, int CountSecond)
{
    /// <summary>Accuracy on the first component.</summary>
    public double First => CountFirst == 0 ? 0 : (double)CorrectFirst / CountFirst;

    /// <summary>Accuracy on the second component.</summary>
    public double Second => CountSecond == 0 ? 0 : (double)CorrectSecond / CountSecond;

    /// <summary>Accuracy on the mixture: both components' examples pooled.</summary>
    public double Mixture => CountFirst + CountSecond == 0 ? 0 : (double)(CorrectFirst + CorrectSecond) / (CountFirst + CountSecond);

    /// <summary>The scores of two component evaluations.</summary>
    public static MixtureScores Of(TaskEvaluation first, TaskEvaluation second) => new(first.Correct, first.N, second.Correct, second.N);
}

/// <summary>
/// How an adapter's delta activation relates to its mixture's: the additivity test of Delta Activations
/// (<c>Clustering.additivity</c>) against the component teachers' δ_A and δ_B, and the cosine with the mixture
/// teacher's δ.
/// </summary>
/// <param name="CosineWithSum">cos(δ, δ_A + δ_B).</param>
/// <param name="CosineWithFirst">cos(δ, δ_A).</param>
/// <param name="CosineWithSecond">cos(δ, δ_B).</param>
/// <param name="Gain">cos(δ, δ_A + δ_B) − max(cos(δ, δ_A), cos(δ, δ_B)).</param>
/// <param name="CosineWithMixtureTeacher">cos(δ, δ of the teacher trained on the mixture).</param>
/// <param name="Norm">‖δ‖₂.</param>
public sealed record DeltaScores(
    double CosineWithSum, double CosineWithFirst, double CosineWithSecond, double Gain, double CosineWithMixtureTeacher, double Norm)
{
    /// <summary>The scores of <paramref name="delta"/> against the components' and the mixture teacher's deltas.</summary>
    public static DeltaScores Of(float[] delta, float[] first, float[] second, float[] mixtureTeacher)
    {
        var additivity = Clustering.additivity(delta, [first, second]);
        return new(
            additivity.WithSum, additivity.WithComponents[0], additivity.WithComponents[1], additivity.Gain,
            Metrics.Cosine(delta, mixtureTeacher), Math.Sqrt(delta.Sum(x => (double)x * x)));
    }
}
