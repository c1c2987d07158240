using LLGBM.Tasks;
using static TorchSharp.torch;

namespace LLGBM.Generators;

/// <summary>
/// The encoded condition pools of a set of tasks: for each task, <see cref="PoolSize"/> of its training examples drawn
/// with a seed (as prompt batches are, <see cref="PromptBatches.Sample"/>), turned into texts (the prompt, or the prompt
/// followed by its answer) and encoded once. A condition is then K distinct rows of a task's pool, [K, D], drawn afresh
/// for every training step and for every evaluation batch.
/// </summary>
public sealed class ConditionBank : IDisposable
{
    readonly Dictionary<string, Tensor> pools = new(StringComparer.Ordinal);
    readonly Dictionary<string, IReadOnlyList<string>> texts = new(StringComparer.Ordinal);

    /// <summary>
    /// Encodes the pools of <paramref name="tasks"/> with <paramref name="encode"/> (texts → [n, D] float32); the pool
    /// of a task holds min(<paramref name="poolSize"/>, its training examples) examples.
    /// </summary>
    public ConditionBank(
        IEnumerable<TaskData> tasks, int poolSize, PromptBatchMode mode, long seed,
        Func<IReadOnlyList<string>, Tensor> encode, Action<string>? progress = null)
    {
        Mode = mode;
        PoolSize = poolSize;
        foreach (var task in tasks)
        {
            var batch = PromptBatches.Sample(task, Math.Min(poolSize, task.Train.Count), seed, mode);
            var taskTexts = batch.Items.Select(item => Text(item)).ToList();
            progress?.Invoke(task.Spec.Name);
            var encoded = encode(taskTexts);
            if (encoded.dim() != 2 || encoded.shape[0] != taskTexts.Count)
                throw new LlgbmException(
                    $"Condition encoder: {taskTexts.Count} texts of task {task.Spec.Name} gave a tensor of shape [{string.Join(", ", encoded.shape)}], " +
                    $"expected [{taskTexts.Count}, D].");
            Dim = (int)encoded.shape[1];
            pools[task.Spec.Name] = encoded.to_type(ScalarType.Float32).DetachFromDisposeScope();
            texts[task.Spec.Name] = taskTexts;
        }
    }

    /// <summary>The text a condition holds for one example: the prompt, or the prompt and its answer.</summary>
    public static string Text(PromptBatchItem item) => item.Answer is null ? item.Prompt : item.Prompt + PromptFormat.Continuation(item.Answer);

    /// <summary>What a condition holds per example.</summary>
    public PromptBatchMode Mode { get; }

    /// <summary>Examples per task's pool (at most).</summary>
    public int PoolSize { get; }

    /// <summary>D, the encoding width.</summary>
    public int Dim { get; private set; }

    /// <summary>The tasks with a pool.</summary>
    public IReadOnlyCollection<string> Tasks => pools.Keys;

    /// <summary>The texts of a task's pool, in row order.</summary>
    public IReadOnlyList<string> Texts(string task) => texts[task];

    /// <summary>The encoded pool of a task, [pool, D].</summary>
    public Tensor Pool(string task) =>
        pools.TryGetValue(task, out var pool) ? pool : throw new LlgbmException($"Condition bank: no pool for task {task}.");

    /// <summary>
    /// The pool rows of one condition: <paramref name="k"/> distinct rows of <paramref name="task"/>'s pool drawn with
    /// <paramref name="seed"/> (a partial Fisher–Yates shuffle).
    /// </summary>
    public int[] SampleRows(string task, int k, long seed)
    {
        var n = (int)Pool(task).shape[0];
        if (k > n)
            throw new LlgbmException($"Condition bank: task {task} has {n} pooled examples, fewer than K = {k}.");
        var random = new Random(unchecked((int)(seed ^ (seed >> 32))));
        var order = Enumerable.Range(0, n).ToArray();
        for (var i = 0; i < k; i++)
        {
            var j = i + random.Next(n - i);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order[..k];
    }

    /// <summary>One condition [K, D]: the rows <see cref="SampleRows"/> draws (a fresh tensor).</summary>
    public Tensor Sample(string task, int k, long seed) =>
        Pool(task).index_select(0, tensor(SampleRows(task, k, seed).Select(i => (long)i).ToArray()));

    /// <summary>N conditions stacked, [N, K, D]: condition i from task <paramref name="tasks"/>[i] with seed <paramref name="seeds"/>[i].</summary>
    public Tensor SampleMany(IReadOnlyList<string> tasks, int k, IReadOnlyList<long> seeds) =>
        stack(tasks.Select((t, i) => Sample(t, k, seeds[i])).ToArray());

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var pool in pools.Values)
            pool.Dispose();
    }
}
