using System.Runtime.InteropServices;
using TorchSharp;

namespace LLGBM;

/// <summary>
/// Where TorchSharp's native libraries come from in a host that has no <c>.deps.json</c> of this library: F# interactive
/// (<c>scripts/Library.fsx</c>), notebooks, a program that loads LLGBM.Core.dll by path. There, TorchSharp's own search
/// can end in its fallback, which copies the NuGet package's <i>unpatched</i> <c>libLibTorchSharp.so</c> (it needs
/// <c>GLIBCXX_3.4.32</c>, which the libstdc++ of Debian 12 and Ubuntu 22.04 lacks; <c>build/PatchLibTorchSharp.cs</c>)
/// into a <c>cpu/</c> folder and fails to load it. <see cref="UseBuildOutput"/> registers a resolver for TorchSharp's
/// native imports that loads each library by full path from the build output's
/// <c>runtimes/&lt;rid&gt;/native/</c> folder, where the build left the patched copy. Nothing is loaded until TorchSharp
/// first needs it, so code that only reads results pays nothing.
/// </summary>
public static class TorchNativeLibraries
{
    const string RegisteredKey = "LLGBM.TorchNativeLibraries.Directory";

    /// <summary>
    /// The folder of native libraries next to LLGBM.Core.dll: <c>runtimes/linux-x64/native</c> (or the platform's own
    /// runtime identifier).
    /// </summary>
    public static string DefaultDirectory =>
        Path.Combine(Path.GetDirectoryName(typeof(TorchNativeLibraries).Assembly.Location) ?? AppContext.BaseDirectory,
            "runtimes", RuntimeIdentifier, "native");

    /// <summary>
    /// Makes TorchSharp load its native libraries from <paramref name="directory"/> (default <see cref="DefaultDirectory"/>):
    /// each import <c>NAME</c> resolves to <c>libNAME.so</c> there (<c>NAME.dll</c>, <c>libNAME.dylib</c> on other
    /// systems) when that file exists, else to TorchSharp's own search. Call it before the first tensor operation; a
    /// second call with the same folder does nothing, with another folder it is an error (the resolver of an assembly
    /// is set once per process).
    /// </summary>
    public static void UseBuildOutput(string? directory = null)
    {
        var folder = Path.GetFullPath(directory ?? DefaultDirectory);
        if (!Directory.Exists(folder))
            throw new LlgbmException(
                $"{folder}: no native libraries there; build the library first (./llgbm --help, or dotnet build src/LLGBM.Cli -c Release).");
        var library = Path.Combine(folder, FileName("LibTorchSharp"));
        if (!File.Exists(library))
            throw new LlgbmException($"{library}: missing; expected TorchSharp's native shim in the build output's {folder}.");
        lock (typeof(TorchNativeLibraries))
        {
            if (AppDomain.CurrentDomain.GetData(RegisteredKey) is string registered)
            {
                if (registered == folder)
                    return;
                throw new LlgbmException($"TorchSharp's native libraries are already resolved from {registered}; cannot switch to {folder}.");
            }
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, (name, _, _) =>
            {
                var path = Path.Combine(folder, FileName(name));
                return File.Exists(path) ? NativeLibrary.Load(path) : IntPtr.Zero;
            });
            AppDomain.CurrentDomain.SetData(RegisteredKey, folder);
        }
    }

    /// <summary>
    /// The files of the shared libraries loaded into this process whose name contains <paramref name="fragment"/>
    /// (from <c>/proc/self/maps</c>; empty where that does not exist), e.g. <c>LibTorchSharp</c>.
    /// </summary>
    public static IReadOnlyList<string> Loaded(string fragment)
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps))
            return [];
        return [.. File.ReadLines(maps)
            .Select(line => line.IndexOf('/') is var i and >= 0 ? line[i..] : "")
            .Where(path => Path.GetFileName(path).Contains(fragment, StringComparison.Ordinal))
            .Distinct(StringComparer.Ordinal)];
    }

    static string RuntimeIdentifier =>
        OperatingSystem.IsWindows() ? (RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "win-arm64" : "win-x64")
        : OperatingSystem.IsMacOS() ? "osx-arm64"
        : RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";

    static string FileName(string name) =>
        OperatingSystem.IsWindows() ? name + ".dll"
        : OperatingSystem.IsMacOS() ? "lib" + name + ".dylib"
        : "lib" + name + ".so";
}
