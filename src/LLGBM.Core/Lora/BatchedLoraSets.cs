using static TorchSharp.torch;

namespace LLGBM.Lora;

/// <summary>Views and rearrangements of batched LoRA sets (A [N, r, in], B [N, out, r] per module).</summary>
public static class BatchedLoraSets
{
    /// <summary>
    /// Unbatched sets of the same modules stacked into one batched set (A [N, r, in], B [N, out, r]; set n is adapter n):
    /// fresh tensors without gradients, owned by the result.
    /// </summary>
    public static LoraSet Stack(IReadOnlyList<LoraSet> sets)
    {
        var modules = new Dictionary<string, LoraModule>();
        using (no_grad())
            foreach (var (path, first) in sets[0].Modules)
                modules[path] = LoraModule.LowRank(
                    stack(sets.Select(s => s.Modules[path].A!).ToArray()).DetachFromDisposeScope(),
                    stack(sets.Select(s => s.Modules[path].B!).ToArray()).DetachFromDisposeScope(),
                    first.Scale);
        return new LoraSet(modules, ownsTensors: true, sets[0].Dropout);
    }

    /// <summary>
    /// Adapter <paramref name="index"/> of a batched set as an unbatched set (views of the batched tensors; the result
    /// owns fresh view handles and disposes only those).
    /// </summary>
    public static LoraSet Select(LoraSet batched, long index)
    {
        var modules = new Dictionary<string, LoraModule>();
        foreach (var (path, m) in batched.Modules)
            modules[path] = m with
            {
                A = m.A is { } a ? (m.IsBatched ? a[index] : a.alias()).DetachFromDisposeScope() : null,
                B = m.B is { } b ? (m.IsBatched ? b[index] : b.alias()).DetachFromDisposeScope() : null,
                Delta = m.Delta is { } d ? (m.IsBatched ? d[index] : d.alias()).DetachFromDisposeScope() : null,
            };
        return new LoraSet(modules, ownsTensors: true, batched.Dropout);
    }

    /// <summary>
    /// A batched set in which adapter n of <paramref name="batched"/> is repeated for <paramref name="rows"/>
    /// consecutive rows (N · rows adapters), for running every row of a shared input batch under every adapter.
    /// Modules that are not batched are kept as they are. The repeated tensors are fresh and belong to the current
    /// dispose scope; the set owns nothing.
    /// </summary>
    public static LoraSet RepeatEach(LoraSet batched, long rows)
    {
        var modules = new Dictionary<string, LoraModule>();
        foreach (var (path, m) in batched.Modules)
            modules[path] = !m.IsBatched ? m : m with
            {
                A = m.A?.repeat_interleave(rows, 0),
                B = m.B?.repeat_interleave(rows, 0),
                Delta = m.Delta?.repeat_interleave(rows, 0),
            };
        return new LoraSet(modules, ownsTensors: false, batched.Dropout);
    }

    /// <summary>
    /// Adapters <paramref name="start"/> … <paramref name="start"/> + <paramref name="count"/> − 1 of a batched set
    /// (views of its tensors, in the current dispose scope); modules that are not batched are kept. The set owns nothing.
    /// </summary>
    public static LoraSet Narrow(LoraSet batched, long start, long count)
    {
        var modules = new Dictionary<string, LoraModule>();
        foreach (var (path, m) in batched.Modules)
            modules[path] = !m.IsBatched ? m : m with
            {
                A = m.A?.narrow(0, start, count),
                B = m.B?.narrow(0, start, count),
                Delta = m.Delta?.narrow(0, start, count),
            };
        return new LoraSet(modules, ownsTensors: false, batched.Dropout) { RowsPerAdapter = batched.RowsPerAdapter };
    }
}
