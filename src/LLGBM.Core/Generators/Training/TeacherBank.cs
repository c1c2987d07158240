using LLGBM.Delta;
using LLGBM.Lora;
using LLGBM.Model;
using LLGBM.Teachers;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>One teacher checkpoint held in memory: its adapter and its delta activation.</summary>
/// <param name="Task">The task it was trained on.</param>
/// <param name="Domain">The task's domain.</param>
/// <param name="Step">The step it was kept at.</param>
/// <param name="Adapter">The adapter (unbatched factors, no gradients).</param>
/// <param name="Delta">Its delta activation [Dim] on the generator's probes.</param>
public sealed record TeacherEntry(string Task, string Domain, int Step, LoraSet Adapter, Tensor Delta);

/// <summary>
/// The teacher checkpoints of a set of tasks with their delta activations, loaded once for generator training and
/// evaluation; <see cref="Stack"/> batches any selection of them for the weight and delta terms.
/// </summary>
public sealed class TeacherBank : IDisposable
{
    readonly List<TeacherEntry> entries;

    // The delta targets of training, entry by entry: the entries' own deltas unless the shuffled-delta control
    // permuted them (evaluation always compares with the entries' own deltas).
    readonly Tensor[] targets;

    TeacherBank(List<TeacherEntry> entries, LoraConfig lora)
    {
        this.entries = entries;
        targets = [.. entries.Select(e => e.Delta)];
        Lora = lora;
        ByTask = entries.Select((e, i) => (e.Task, i)).GroupBy(p => p.Task, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<int>)[.. g.Select(p => p.i)], StringComparer.Ordinal);
    }

    /// <summary>Every checkpoint, tasks in name order and steps ascending.</summary>
    public IReadOnlyList<TeacherEntry> Entries => entries;

    /// <summary>The indices of each task's checkpoints.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<int>> ByTask { get; }

    /// <summary>The LoRA configuration every teacher shares.</summary>
    public LoraConfig Lora { get; }

    /// <summary>
    /// Loads the kept checkpoints of <paramref name="tasks"/> from the teacher pool <paramref name="poolDir"/> with
    /// their deltas from the cache <paramref name="cacheDir"/> (computing the missing ones first; see
    /// <c>DeltaCache.Compute</c>). Every teacher must share one LoRA configuration. With
    /// <paramref name="checkpointsPerTask"/> above 0 only the last that many checkpoints of each task are loaded.
    /// </summary>
    public static TeacherBank Load(
        string poolDir, string cacheDir, string baseDir, ProbeSet probes, DeltaSpec spec, IReadOnlyCollection<string> tasks,
        Qwen2Config model, Action<DeltaCacheProgress>? progress = null, Device? device = null, int checkpointsPerTask = 0) =>
        Load(poolDir, cacheDir, baseDir, DeltaMeasure.Activation(probes, spec), tasks, model, progress, device, checkpointsPerTask);

    /// <summary>
    /// Loads the kept checkpoints of <paramref name="tasks"/> from the teacher pool <paramref name="poolDir"/> with
    /// their deltas of <paramref name="measure"/> (either kind) from the cache <paramref name="cacheDir"/>, computing the
    /// missing ones first; with <paramref name="checkpointsPerTask"/> above 0, only each task's last that many
    /// checkpoints. Every teacher must share one LoRA configuration.
    /// </summary>
    public static TeacherBank Load(
        string poolDir, string cacheDir, string baseDir, DeltaMeasure measure, IReadOnlyCollection<string> tasks,
        Qwen2Config model, Action<DeltaCacheProgress>? progress = null, Device? device = null, int checkpointsPerTask = 0)
    {
        if (checkpointsPerTask < 0)
            throw new LlgbmException($"Teacher bank: {checkpointsPerTask} checkpoints per task asked for; 0 (all) or more.");
        var manifests = TeacherPool.ReadManifest(poolDir).Where(m => tasks.Contains(m.Task)).ToList();
        var missing = tasks.Where(t => manifests.All(m => m.Task != t)).ToList();
        if (missing.Count > 0)
            throw new LlgbmException($"{poolDir}: the teacher pool has no teachers for {string.Join(", ", missing)}; train them with llgbm teachers train.");
        DeltaCache.Compute(baseDir, poolDir, cacheDir, measure, progress: progress, device: device);
        var deltas = DeltaCache.Load(cacheDir, baseDir, measure);
        var byAdapter = deltas.ToDictionary(d => d.Adapter, StringComparer.Ordinal);
        var entries = new List<TeacherEntry>();
        LoraConfig? shared = null;
        try
        {
            foreach (var checkpoint in manifests.OrderBy(m => m.Task, StringComparer.Ordinal)
                         .SelectMany(m => m.Checkpoints.OrderBy(c => c.Step).TakeLast(checkpointsPerTask > 0 ? checkpointsPerTask : int.MaxValue)))
            {
                var dir = Path.Combine(poolDir, checkpoint.Adapter);
                var (config, adapter) = PeftAdapter.Load(dir, model, device);
                shared ??= config;
                if (!SameShape(shared, config))
                {
                    adapter.Dispose();
                    throw new LlgbmException(
                        $"{dir}: its LoRA configuration (r {config.Rank}, targets {string.Join(",", config.TargetModules)}) " +
                        $"differs from the pool's first teacher's; a generator emits one shape.");
                }
                var delta = byAdapter.TryGetValue(checkpoint.Adapter, out var d)
                    ? d.Delta.to(device ?? CPU).DetachFromDisposeScope()
                    : throw new LlgbmException($"{cacheDir}: no delta for {checkpoint.Adapter}.");
                entries.Add(new TeacherEntry(checkpoint.Task, checkpoint.Domain, checkpoint.Step, adapter, delta));
            }
        }
        catch
        {
            foreach (var e in entries)
            {
                e.Adapter.Dispose();
                e.Delta.Dispose();
            }
            throw;
        }
        finally
        {
            foreach (var d in deltas)
                d.Dispose();
        }
        return new TeacherBank(entries, shared!);
    }

    static bool SameShape(LoraConfig a, LoraConfig b) =>
        a.Rank == b.Rank && a.Alpha == b.Alpha && a.UseRsLora == b.UseRsLora && a.TargetModules.SequenceEqual(b.TargetModules)
        && (a.Layers ?? []).SequenceEqual(b.Layers ?? []) && a.RankPattern.Count == 0 && b.RankPattern.Count == 0;

    /// <summary>
    /// The shuffled-delta control: the delta targets of <paramref name="tasks"/> are permuted across those tasks (a seeded
    /// cyclic shift of a seeded shuffle, so no task keeps its own), checkpoint j of a task taking the delta of checkpoint
    /// j (modulo their count) of its partner. Adapters are untouched, so the weight term is unchanged while the delta term
    /// asks for another task's behaviour; the entries' own deltas are kept for evaluation. Returns the permutation (task → the task whose deltas it now
    /// holds).
    /// </summary>
    public IReadOnlyDictionary<string, string> ShuffleDeltas(IReadOnlyList<string> tasks, long seed)
    {
        if (tasks.Count < 2)
            throw new LlgbmException("Shuffled-delta control: it needs at least two tasks.");
        var order = tasks.OrderBy(t => t, StringComparer.Ordinal).ToArray();
        new Random(unchecked((int)(seed ^ (seed >> 32)) ^ 0x5F1E)).Shuffle(order);
        var partner = order.Select((t, i) => (t, order[(i + 1) % order.Length])).ToDictionary(p => p.t, p => p.Item2, StringComparer.Ordinal);
        foreach (var (task, other) in partner)
        {
            var mine = ByTask[task];
            var theirs = ByTask[other];
            for (var j = 0; j < mine.Count; j++)
                targets[mine[j]] = entries[theirs[j % theirs.Count]].Delta;
        }
        return partner;
    }

    /// <summary>The adapters at <paramref name="indices"/> as one batched set (fresh stacked tensors, no gradients).</summary>
    public LoraSet Stack(IReadOnlyList<int> indices) => BatchedLoraSets.Stack([.. indices.Select(i => entries[i].Adapter)]);

    /// <summary>
    /// The delta targets of training at <paramref name="indices"/>, [N, Dim] (a fresh tensor): the teachers' own deltas,
    /// or under the shuffled-delta control (<see cref="ShuffleDeltas"/>) their partners'. Evaluation reads
    /// <see cref="TeacherEntry.Delta"/>, which the control never changes.
    /// </summary>
    public Tensor Deltas(IReadOnlyList<int> indices) => stack(indices.Select(i => targets[i]).ToArray());

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var e in entries)
        {
            e.Adapter.Dispose();
            e.Delta.Dispose();
        }
    }
}
