using LLGBM.Algebra;
using LLGBM.Generators;
using LLGBM.Lora;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Experiments;

/// <summary>The adapters a generated one is compared with; none of them reads the condition.</summary>
public enum ReferenceMethod
{
    /// <summary>The base model, no adapter.</summary>
    Base,

    /// <summary>The task's own teacher (its last kept checkpoint): the ceiling.</summary>
    Oracle,

    /// <summary>The ΔW average of the training teachers: what a generator that ignores its condition would emit.</summary>
    MeanTeacher,

    /// <summary>A random adapter as large as the training teachers, carrying no task.</summary>
    Random,
}

/// <summary>
/// The reference methods' names and adapters: the mean teacher is the algebra's <see cref="Merge.Average"/> of the
/// teachers' task vectors, the random adapter has the teachers' mean ΔW norm per module.
/// </summary>
public static class ReferenceAdapters
{
    /// <summary>Every reference method, in the order results list them.</summary>
    public static IReadOnlyList<ReferenceMethod> All { get; } =
        [ReferenceMethod.Base, ReferenceMethod.Oracle, ReferenceMethod.MeanTeacher, ReferenceMethod.Random];

    /// <summary>The seed of the random-adapter control (fixed, so that every run compares against the same one).</summary>
    public const long RandomSeed = 0x0A11CE;

    /// <summary>The method's name in results files: base, oracle, mean-teacher or random.</summary>
    public static string Name(this ReferenceMethod method) => method switch
    {
        ReferenceMethod.Base => "base",
        ReferenceMethod.Oracle => "oracle",
        ReferenceMethod.MeanTeacher => "mean-teacher",
        ReferenceMethod.Random => "random",
        _ => throw new ArgumentOutOfRangeException(nameof(method), method, "not a reference method"),
    };

    /// <summary>The method named <paramref name="name"/>.</summary>
    /// <exception cref="LlgbmException">No reference method has that name.</exception>
    public static ReferenceMethod Parse(string name) =>
        All.Where(m => m.Name() == name).Select(m => (ReferenceMethod?)m).FirstOrDefault()
        ?? throw new LlgbmException(
            $"reference method \"{name}\": expected one of {string.Join(", ", All.Select(m => m.Name()))}.");

    /// <summary>
    /// The mean teacher of task vectors: their average (<see cref="Controls.MeanTeacher"/>, which is
    /// <see cref="Merge.Average"/>), a fresh vector.
    /// </summary>
    public static TaskVector MeanTeacher(IEnumerable<TaskVector> teachers) => Controls.MeanTeacher(teachers);

    /// <summary>
    /// The mean teacher of LoRA sets as a dense set of float32 modules on <paramref name="device"/>: the
    /// <see cref="Merge.Average"/> of their ΔW. The caller owns the result; the sets are neither changed nor disposed.
    /// </summary>
    public static LoraSet MeanTeacher(IReadOnlyList<LoraSet> teachers, Device device)
    {
        var vectors = new List<TaskVector>();
        try
        {
            foreach (var set in teachers)
                vectors.Add(TaskVectorModule.OfLora(set));
            using var mean = MeanTeacher(vectors);
            return TaskVectorModule.ToDenseLoraOn(device, ScalarType.Float32, mean);
        }
        finally
        {
            foreach (var v in vectors)
                v.Dispose();
        }
    }

    /// <summary>
    /// The random-adapter control: per module, factors drawn from N(0, 1) with <paramref name="seed"/> and B rescaled so
    /// that ‖scale · B · A‖_F equals the mean ‖ΔW‖_F of that module over <paramref name="teachers"/>. An adapter as
    /// large as a teacher that carries no task. The caller owns the result.
    /// </summary>
    public static LoraSet Random(IReadOnlyList<LoraSet> teachers, long seed = RandomSeed)
    {
        var modules = new Dictionary<string, LoraModule>();
        using var generator = new TorchSharp.torch.Generator((ulong)seed);
        using (no_grad())
            foreach (var (path, first) in teachers[0].Modules)
            {
                var target = teachers.Average(t =>
                {
                    using var w = t.Modules[path].DeltaWeight();
                    return linalg.matrix_norm(w).item<float>();
                });
                var a = randn(first.A!.shape, generator: generator).to(first.A.device);
                var b = randn(first.B!.shape, generator: generator).to(first.B.device);
                using var scale = first.Scale.ToScalar();
                using var w = b.matmul(a) * scale;
                var norm = linalg.matrix_norm(w).item<float>();
                using var factor = (target / Math.Max(norm, 1e-12)).ToScalar();
                b.mul_(factor);
                modules[path] = LoraModule.LowRank(a.DetachFromDisposeScope(), b.DetachFromDisposeScope(), first.Scale);
            }
        return new LoraSet(modules, ownsTensors: true);
    }

    /// <summary>
    /// The reference adapters of a teacher bank for a generator's evaluation: the oracle of a task is its last kept
    /// teacher; the mean teacher averages every kept checkpoint of the training tasks; the random adapter matches the
    /// training tasks' last teachers. Built on first use and disposed with this object.
    /// </summary>
    public sealed class OfBank(TeacherBank teachers, IReadOnlyList<string> trainingTasks, Device device) : IDisposable
    {
        LoraSet? mean;
        LoraSet? random;

        /// <summary>The adapter of <paramref name="method"/> for <paramref name="task"/> (null for the base model); borrowed.</summary>
        public LoraSet? For(ReferenceMethod method, string task) => method switch
        {
            ReferenceMethod.Base => null,
            ReferenceMethod.Oracle => teachers.Entries[teachers.ByTask[task][^1]].Adapter,
            ReferenceMethod.MeanTeacher => mean ??= MeanTeacher(
                [.. trainingTasks.SelectMany(t => teachers.ByTask[t]).Select(i => teachers.Entries[i].Adapter)], device),
            ReferenceMethod.Random => random ??= Random(
                [.. trainingTasks.Select(t => teachers.Entries[teachers.ByTask[t][^1]].Adapter)]),
            _ => throw new ArgumentOutOfRangeException(nameof(method), method, "not a reference method"),
        };

        /// <inheritdoc/>
        public void Dispose()
        {
            mean?.Dispose();
            random?.Dispose();
        }
    }
}
