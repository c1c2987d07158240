using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using LLGBM.Checkpoints;
using static TorchSharp.torch;

namespace LLGBM.Conditioning;

/// <summary>
/// A content-addressed store of text encodings, so that repeated epochs do not encode the same prompt again. An entry
/// is keyed by the SHA-256 of the encoder's <see cref="ISentenceEncoder.Identity"/> and the SHA-256 of the text
/// (UTF-8): a changed text or a changed encoder (other weights, tokenization, pooling, seed) never finds another's
/// entry. Entries live in memory and, when a directory is given, on disk as
/// <c>DIR/ENCODER/XX/TEXT.safetensors</c> (ENCODER the identity's hash, TEXT the text's hash, XX its first two hex
/// digits; one float32 tensor <c>encoding</c> [D], metadata with the identity and the text's hash), each written
/// atomically, beside <c>DIR/ENCODER/encoder.json</c> naming the encoder. Several processes may share a directory: they
/// write the same bytes for the same key. Safe for use from several threads.
/// </summary>
public sealed class EncodingCache
{
    /// <summary>The tensor name of an entry file.</summary>
    public const string TensorName = "encoding";

    /// <summary>The file beside an encoder's entries that describes it.</summary>
    public const string EncoderFileName = "encoder.json";

    readonly ConcurrentDictionary<string, float[]> memory = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, bool> describedEncoders = new(StringComparer.Ordinal);

    /// <summary>A cache in memory and, when <paramref name="directory"/> is given, on disk under it (created when missing).</summary>
    public EncodingCache(string? directory = null)
    {
        Directory = directory;
        if (directory is not null)
            System.IO.Directory.CreateDirectory(directory);
    }

    /// <summary>The directory of the entries on disk; null for a cache in memory only.</summary>
    public string? Directory { get; }

    /// <summary>Entries held in memory.</summary>
    public int MemoryCount => memory.Count;

    /// <summary>The hash naming an encoder's entries: SHA-256 of its identity.</summary>
    public static string EncoderKey(string identity) => ContentHash.OfText(identity);

    /// <summary>The hash naming a text's entry: SHA-256 of its UTF-8 bytes.</summary>
    public static string TextKey(string text) => ContentHash.OfText(text);

    /// <summary>The path of the entry of (<paramref name="identity"/>, <paramref name="text"/>) under <paramref name="directory"/>.</summary>
    public static string EntryPath(string directory, string identity, string text)
    {
        var textKey = TextKey(text);
        return Path.Combine(directory, EncoderKey(identity), textKey[..2], textKey + ".safetensors");
    }

    /// <summary>
    /// The encoding of <paramref name="text"/> by the encoder of <paramref name="identity"/>, from memory or else from
    /// disk (then kept in memory); false when neither holds it.
    /// </summary>
    /// <exception cref="LlgbmException">The entry file on disk is not an encoding of this text by this encoder, or not of <paramref name="dimension"/>
    /// values.</exception>
    public bool TryGet(string identity, string text, int dimension, out float[] encoding, out bool fromDisk)
    {
        fromDisk = false;
        var key = MemoryKey(identity, text);
        if (memory.TryGetValue(key, out var found))
        {
            CheckDimension(found, dimension, "memory");
            encoding = found;
            return true;
        }
        if (Directory is not null)
        {
            var path = EntryPath(Directory, identity, text);
            if (File.Exists(path))
            {
                encoding = ReadEntry(path, identity, text, dimension);
                memory.TryAdd(key, encoding);
                fromDisk = true;
                return true;
            }
        }
        encoding = [];
        return false;
    }

    /// <summary>Stores the encoding of <paramref name="text"/> by the encoder (in memory, and on disk when the cache has a directory).</summary>
    public void Put(ISentenceEncoder encoder, string text, float[] encoding)
    {
        CheckDimension(encoding, encoder.Dimension, "the value to store");
        var identity = encoder.Identity;
        memory[MemoryKey(identity, text)] = encoding;
        if (Directory is null)
            return;
        DescribeEncoder(encoder);
        var path = EntryPath(Directory, identity, text);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var values = tensor(encoding, [encoding.Length]);
        var metadata = new Dictionary<string, string>
        {
            ["encoder_identity"] = identity,
            ["encoder"] = encoder.Name,
            ["text_sha256"] = TextKey(text),
            ["dimension"] = encoding.Length.ToString(CultureInfo.InvariantCulture),
        };
        SafetensorsWriter.Save(path, [new(TensorName, values)], metadata);
    }

    static string MemoryKey(string identity, string text) => EncoderKey(identity) + "/" + TextKey(text);

    static void CheckDimension(float[] encoding, int dimension, string where)
    {
        if (encoding.Length != dimension)
            throw new LlgbmException($"Encoding cache: an encoding in {where} has {encoding.Length} values, expected the encoder's dimension {dimension}.");
    }

    void DescribeEncoder(ISentenceEncoder encoder)
    {
        var identity = encoder.Identity;
        if (!describedEncoders.TryAdd(identity, true))
            return;
        var folder = Path.Combine(Directory!, EncoderKey(identity));
        System.IO.Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, EncoderFileName);
        if (File.Exists(path))
            return;
        var description = new Dictionary<string, object> { ["name"] = encoder.Name, ["dimension"] = encoder.Dimension, ["identity"] = identity };
        AtomicFile.Write(path, stream => JsonSerializer.Serialize(stream, description, new JsonSerializerOptions { WriteIndented = true }));
    }

    static float[] ReadEntry(string path, string identity, string text, int dimension)
    {
        using var reader = SafetensorsReader.Open(path);
        var meta = reader.Metadata;
        if (meta.GetValueOrDefault("encoder_identity") != identity || meta.GetValueOrDefault("text_sha256") != TextKey(text))
            throw new LlgbmException($"{path}: the cache entry's metadata names another encoder or text than its path; the cache directory is corrupt.");
        if (!reader.Entries.TryGetValue(TensorName, out var entry) || entry.Shape.Count != 1 || entry.Shape[0] != dimension)
            throw new LlgbmException($"{path}: expected a tensor '{TensorName}' of shape [{dimension}] in the cache entry.");
        using var values = reader.Read(TensorName);
        if (values.dtype != ScalarType.Float32)
            throw new LlgbmException($"{path}: the cache entry's tensor '{TensorName}' is {values.dtype}, expected float32.");
        return values.data<float>().ToArray();
    }
}
