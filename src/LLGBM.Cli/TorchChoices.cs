using TorchSharp;
using static TorchSharp.torch;

namespace LLGBM.Cli;

/// <summary>Parses the <c>--device</c> and <c>--dtype</c> values every command accepts.</summary>
public static class TorchChoices
{
    /// <summary>The environment variable that sets every command's default <c>--device</c> (<c>llgbm pipeline --device</c> sets it).</summary>
    public const string DeviceVariable = "LLGBM_DEVICE";

    /// <summary>The default <c>--device</c>: the value of <see cref="DeviceVariable"/> when set, else <c>cpu</c>.</summary>
    public static string DefaultDevice =>
        Environment.GetEnvironmentVariable(DeviceVariable) is { Length: > 0 } name ? name : "cpu";

    /// <summary>The accepted <c>--dtype</c> names.</summary>
    public static readonly string[] DtypeNames = ["f32", "bf16", "f16"];

    /// <summary>"cpu", "cuda" or "cuda:N" as a device; an error when CUDA is asked for but not available.</summary>
    public static Device Device(string name)
    {
        if (name == "cpu")
            return CPU;
        if (name == "cuda" || name.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!cuda.is_available())
                throw new LlgbmException(
                    $"--device {name}: CUDA is not available in this build. Build with the CUDA backend (README, \"GPU\") on a machine with an NVIDIA GPU.");
            return new Device(name);
        }
        throw new LlgbmException($"--device {name}: expected cpu, cuda or cuda:N.");
    }

    /// <summary>"f32", "bf16" or "f16" as a scalar type.</summary>
    public static ScalarType Dtype(string name) => name switch
    {
        "f32" or "float32" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "f16" or "float16" => ScalarType.Float16,
        _ => throw new LlgbmException($"--dtype {name}: expected one of {string.Join(", ", DtypeNames)}."),
    };
}
