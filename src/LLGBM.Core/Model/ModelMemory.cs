using System.Globalization;
using LLGBM.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Model;

/// <summary>
/// Refuses a model whose parameters cannot fit in the memory available, before anything is allocated, so that a config
/// with absurd sizes (a <c>vocab_size</c> of 2^31 − 1, say) gives an error naming it rather than a native allocation
/// failure. Only CPU memory is checked: for a CUDA device the allocation itself reports what is missing.
/// </summary>
public static class ModelMemory
{
    /// <summary>
    /// The bytes available for new allocations: <c>MemAvailable</c> of <c>/proc/meminfo</c> where there is one, else
    /// what the garbage collector reports as available (the physical memory, or the container's limit).
    /// </summary>
    public static (long Bytes, string Source) Available()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                // "MemAvailable:   19876544 kB"
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)
                    && line.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [_, var kb, "kB"]
                    && long.TryParse(kb, NumberStyles.None, CultureInfo.InvariantCulture, out var kilobytes))
                    return (kilobytes * 1024, "MemAvailable in /proc/meminfo");
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, "the memory available to .NET");
    }

    /// <summary>
    /// Throws a <see cref="LlgbmException"/> naming <paramref name="source"/>, the parameter count and the memory when
    /// the parameters of <paramref name="config"/> in <paramref name="dtype"/> need more bytes than are available on
    /// the CPU. Does nothing for other devices.
    /// </summary>
    /// <param name="config">A validated architecture.</param>
    /// <param name="dtype">The dtype the parameters are allocated in.</param>
    /// <param name="device">Where they are allocated (null: the CPU).</param>
    /// <param name="source">What the config comes from, e.g. the path of its config.json.</param>
    public static void EnsureFits(Qwen2Config config, ScalarType dtype, Device? device, string source)
    {
        if (device is not null && device.type != DeviceType.CPU)
            return;
        var count = config.ParameterCount;
        // The model's dtypes (f32, bf16, f16) all have a safetensors equivalent; anything else is counted as 4 bytes.
        var size = SafetensorsDTypes.FromScalarType(dtype)?.ElementSize() ?? 4;
        var bytes = count > long.MaxValue / size ? long.MaxValue : count * size;
        var (available, where) = Available();
        if (bytes > available)
            throw new LlgbmException(string.Create(CultureInfo.InvariantCulture,
                $"{source}: the architecture has {count:N0} parameters (vocab_size {config.VocabSize}, hidden_size {config.HiddenSize}, " +
                $"intermediate_size {config.IntermediateSize}, num_hidden_layers {config.NumHiddenLayers}), {Gigabytes(bytes)} as {dtype}, " +
                $"more than the {Gigabytes(available)} of memory available ({where})."));
    }

    static string Gigabytes(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e9:F1} GB");
}
