using LLGBM.Tasks;

namespace LLGBM.Generators;

/// <summary>
/// The training tasks of a low-data run: a deterministic fraction of a split's training tasks that keeps every domain
/// represented. Within each domain (in the order the tasks are listed) ⌈n · fraction⌉ of its n tasks are kept, at least
/// one, spread evenly over the domain's list (positions ⌊i · n / m⌋ for i = 0 … m − 1); the order of the kept tasks is
/// the list's.
/// </summary>
public static class LowDataTasks
{
    /// <summary>The tasks of <paramref name="tasks"/> kept at <paramref name="fraction"/> (0 &lt; fraction ≤ 1).</summary>
    /// <exception cref="LlgbmException">The fraction is outside (0, 1].</exception>
    public static IReadOnlyList<TaskData> Subset(IReadOnlyList<TaskData> tasks, double fraction)
    {
        var keep = SubsetNames([.. tasks.Select(t => (t.Spec.Name, t.Spec.Domain))], fraction).ToHashSet(StringComparer.Ordinal);
        return [.. tasks.Where(t => keep.Contains(t.Spec.Name))];
    }

    /// <summary>The names kept of (name, domain) pairs at <paramref name="fraction"/>, in the list's order.</summary>
    /// <exception cref="LlgbmException">The fraction is outside (0, 1].</exception>
    public static IReadOnlyList<string> SubsetNames(IReadOnlyList<(string Name, string Domain)> tasks, double fraction)
    {
        if (!(fraction > 0 && fraction <= 1))
            throw new LlgbmException($"Low-data tasks: the fraction of training tasks kept ({fraction}) must be in (0, 1].");
        var keep = new HashSet<string>(StringComparer.Ordinal);
        foreach (var domain in tasks.GroupBy(t => t.Domain, StringComparer.Ordinal))
        {
            var names = domain.Select(t => t.Name).ToList();
            var m = Math.Max(1, (int)Math.Ceiling(names.Count * fraction - 1e-9));
            for (var i = 0; i < m; i++)
                keep.Add(names[i * names.Count / m]);
        }
        return [.. tasks.Select(t => t.Name).Where(keep.Contains)];
    }
}
