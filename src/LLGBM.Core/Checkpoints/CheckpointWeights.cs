using System.Text.Json;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace LLGBM.Checkpoints;

/// <summary>
/// Reads and writes the weight files of a Hugging Face checkpoint directory: either one <c>model.safetensors</c>, or
/// shards <c>model-00001-of-0000N.safetensors</c> listed by <c>model.safetensors.index.json</c>
/// (<c>{"metadata": {"total_size": n}, "weight_map": {tensor: shard file}}</c>).
/// </summary>
public static partial class CheckpointWeights
{
    /// <summary>The name of the single weights file.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>The name of the shard index.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>The largest index file read, in bytes.</summary>
    public const long MaxIndexBytes = 100_000_000;

    /// <summary>The name of shard <paramref name="number"/> (from 1) of <paramref name="count"/>.</summary>
    public static string ShardFileName(int number, int count) => $"model-{number:D5}-of-{count:D5}.safetensors";

    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$")]
    private static partial Regex ShardNamePattern();

    /// <summary>
    /// Opens the weights in <paramref name="directory"/>. As Hugging Face transformers does, a
    /// <c>model.safetensors</c> is used when present, else <c>model.safetensors.index.json</c> and its shards.
    /// Every header is validated, and for an index: each weight_map tensor must be in its shard, each shard
    /// tensor in the weight_map, no tensor in two shards, and each shard inside the directory.
    /// </summary>
    /// <exception cref="CheckpointFormatException">The directory, index or shard set is invalid.</exception>
    /// <exception cref="SafetensorsFormatException">A weight file breaks a rule of the safetensors format.</exception>
    public static CheckpointReader Open(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new CheckpointFormatException(directory, null, CheckpointRule.NoDirectory,
                "the directory does not exist");
        }
        var single = Path.Combine(directory, SingleFileName);
        if (File.Exists(single))
        {
            var reader = SafetensorsReader.Open(single);
            return new CheckpointReader(directory, sharded: false, [reader], indexTotalSize: null);
        }
        var index = Path.Combine(directory, IndexFileName);
        if (File.Exists(index))
        {
            return OpenSharded(directory, index);
        }

        var others = new[] { "pytorch_model.bin", "pytorch_model.bin.index.json", "model.bin" }
            .Where(name => File.Exists(Path.Combine(directory, name)))
            .ToArray();
        var hint = others.Length == 0
            ? ""
            : $"; it has {string.Join(", ", others)}, which LLGBM does not read (convert the weights to safetensors)";
        throw new CheckpointFormatException(directory, null, CheckpointRule.NoWeights,
            $"looked for '{SingleFileName}' and '{IndexFileName}' and found neither{hint}");
    }

    private static CheckpointReader OpenSharded(string directory, string index)
    {
        var (weightMap, totalSize) = ReadIndex(directory, index);

        // Shard files in the order the weight map first names them.
        var shardNames = new List<string>();
        var tensorsByShard = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (tensor, shard) in weightMap)
        {
            if (!tensorsByShard.TryGetValue(shard, out var list))
            {
                tensorsByShard[shard] = list = [];
                shardNames.Add(shard);
            }
            list.Add(tensor);
        }

        var fullDirectory = Path.GetFullPath(directory);
        var shardPaths = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var shard in shardNames)
        {
            shardPaths[shard] = ResolveShard(directory, fullDirectory, index, shard, tensorsByShard[shard][0]);
        }
        foreach (var shard in shardNames)
        {
            if (!File.Exists(shardPaths[shard]))
            {
                var tensors = tensorsByShard[shard];
                throw new CheckpointFormatException(directory, index, CheckpointRule.ShardMissing,
                    $"the weight_map assigns {tensors.Count} tensor(s), e.g. '{tensors[0]}', to '{shard}', " +
                    "which is not in the directory");
            }
        }

        var readers = new List<SafetensorsReader>();
        try
        {
            foreach (var shard in shardNames)
            {
                readers.Add(SafetensorsReader.Open(shardPaths[shard]));
            }
            CheckShards(directory, index, weightMap, shardNames, readers);
            return new CheckpointReader(directory, sharded: true, readers, totalSize);
        }
        catch
        {
            foreach (var reader in readers)
            {
                reader.Dispose();
            }
            throw;
        }
    }

    private static string ResolveShard(string directory, string fullDirectory, string index, string shard, string tensor)
    {
        string? full = null;
        if (shard.Length > 0 && !Path.IsPathRooted(shard) && shard.IndexOf('\0') < 0)
        {
            full = Path.GetFullPath(Path.Combine(fullDirectory, shard));
            var relative = Path.GetRelativePath(fullDirectory, full);
            if (relative == "." || relative == ".." || Path.IsPathRooted(relative) ||
                relative.StartsWith(".." + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                full = null;
            }
        }
        return full ?? throw new CheckpointFormatException(directory, index, CheckpointRule.ShardPathEscapes,
            $"the weight_map assigns '{tensor}' to shard '{shard}', expected a file name inside the directory");
    }

    private static void CheckShards(
        string directory,
        string index,
        IReadOnlyList<KeyValuePair<string, string>> weightMap,
        IReadOnlyList<string> shardNames,
        IReadOnlyList<SafetensorsReader> readers)
    {
        var holder = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < readers.Count; i++)
        {
            foreach (var tensor in readers[i].Entries.Keys)
            {
                if (holder.TryGetValue(tensor, out var first))
                {
                    throw new CheckpointFormatException(directory, readers[i].Path, CheckpointRule.TensorInTwoShards,
                        $"tensor '{tensor}' is in both '{first}' and '{shardNames[i]}', expected it in one shard");
                }
                holder[tensor] = shardNames[i];
            }
        }

        var readerOf = shardNames.Zip(readers).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal);
        var mapped = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (tensor, shard) in weightMap)
        {
            mapped.Add(tensor);
            if (!readerOf[shard].Entries.ContainsKey(tensor))
            {
                var elsewhere = holder.TryGetValue(tensor, out var other) ? $"; it is in '{other}' instead" : "";
                throw new CheckpointFormatException(directory, readerOf[shard].Path,
                    CheckpointRule.TensorMissingFromShard,
                    $"the weight_map assigns tensor '{tensor}' to '{shard}', whose header does not hold it{elsewhere}");
            }
        }

        foreach (var (tensor, shard) in holder)
        {
            if (!mapped.Contains(tensor))
            {
                throw new CheckpointFormatException(directory, readerOf[shard].Path, CheckpointRule.TensorNotInIndex,
                    $"shard '{shard}' holds tensor '{tensor}', which the weight_map of '{IndexFileName}' does not list");
            }
        }
    }

    /// <summary>Reads the weight map (in file order, duplicates rejected) and the optional total size.</summary>
    private static (List<KeyValuePair<string, string>> WeightMap, long? TotalSize) ReadIndex(
        string directory, string index)
    {
        var length = new FileInfo(index).Length;
        if (length > MaxIndexBytes)
        {
            throw new CheckpointFormatException(directory, index, CheckpointRule.IndexTooLarge,
                $"the index has {length} bytes, expected at most {MaxIndexBytes}");
        }
        ReadOnlyMemory<byte> bytes = File.ReadAllBytes(index);
        if (bytes.Span.StartsWith("\uFEFF"u8))
        {
            bytes = bytes[3..];
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(directory, index, CheckpointRule.IndexNotJson,
                $"the index is not valid UTF-8 JSON: {e.Message}", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Schema(directory, index, $"expected a JSON object, found {root.ValueKind}");
            }

            long? totalSize = null;
            if (root.TryGetProperty("metadata", out var metadata))
            {
                if (metadata.ValueKind != JsonValueKind.Object)
                {
                    throw Schema(directory, index, $"expected \"metadata\" to be an object, found {metadata.ValueKind}");
                }
                if (metadata.TryGetProperty("total_size", out var total))
                {
                    totalSize = TotalSize(total)
                        ?? throw Schema(directory, index,
                            $"expected \"metadata.total_size\" to be a non-negative integer, found {total.GetRawText()}");
                }
            }

            if (!root.TryGetProperty("weight_map", out var map))
            {
                throw Schema(directory, index, "the index has no \"weight_map\" object");
            }
            if (map.ValueKind != JsonValueKind.Object)
            {
                throw Schema(directory, index, $"expected \"weight_map\" to be an object, found {map.ValueKind}");
            }

            var weightMap = new List<KeyValuePair<string, string>>();
            var seen = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                {
                    throw Schema(directory, index,
                        $"expected the weight_map entry of '{entry.Name}' to be a shard file name, " +
                        $"found {entry.Value.GetRawText()}");
                }
                var shard = entry.Value.GetString()!;
                if (seen.TryGetValue(entry.Name, out var first))
                {
                    throw new CheckpointFormatException(directory, index, CheckpointRule.TensorInTwoShards,
                        $"tensor '{entry.Name}' is listed twice in the weight_map (in '{first}' and in '{shard}'), " +
                        "expected once");
                }
                seen[entry.Name] = shard;
                weightMap.Add(new(entry.Name, shard));
            }
            return (weightMap, totalSize);
        }
    }

    private static long? TotalSize(JsonElement total)
    {
        if (total.ValueKind != JsonValueKind.Number)
        {
            return null;
        }
        if (total.TryGetInt64(out var exact))
        {
            return exact >= 0 ? exact : null;
        }
        // Some published indexes write the size as a float, e.g. 988097536.0.
        var value = total.GetDouble();
        return value >= 0 && value < long.MaxValue && Math.Floor(value) == value ? (long)value : null;
    }

    private static CheckpointFormatException Schema(string directory, string index, string detail) =>
        new(directory, index, CheckpointRule.IndexSchema, detail);

    /// <summary>
    /// Writes <paramref name="tensors"/> into <paramref name="directory"/> (created if missing) as Hugging Face
    /// weights: one <c>model.safetensors</c> when their data fits in <paramref name="maxShardBytes"/>, else shards
    /// <c>model-00001-of-0000N.safetensors</c> plus <c>model.safetensors.index.json</c>.
    /// </summary>
    /// <remarks>
    /// Tensors are packed into shards greedily in the given order; a shard is closed when the next tensor would take
    /// it over <paramref name="maxShardBytes"/>, and a tensor larger than that gets a shard of its own. The index's
    /// <c>total_size</c> is the sum of the tensors' byte sizes. Each file is written atomically (temporary file, then
    /// rename); the index is written after its shards; weight files of the previous layout (the other
    /// <c>model.safetensors</c>/index, shards named like ours, shards the old index listed) are removed only once
    /// every new file is complete. The caller's tensors are neither changed nor disposed.
    /// </remarks>
    /// <exception cref="ArgumentException">A name is repeated, empty or reserved, or a tensor is disposed.</exception>
    /// <exception cref="LlgbmException">A tensor's element type has no safetensors dtype.</exception>
    /// <exception cref="NonFiniteException">A tensor holds NaN or ±infinity; nothing is written.</exception>
    public static void Save(
        string directory, IEnumerable<KeyValuePair<string, Tensor>> tensors, long maxShardBytes = long.MaxValue) =>
        Save(directory, tensors, maxShardBytes, TensorBytes.DefaultChunkBytes);

    internal static void Save(
        string directory, IEnumerable<KeyValuePair<string, Tensor>> tensors, long maxShardBytes, int chunkBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        var items = SafetensorsWriter.Collect(tensors, directory);
        Directory.CreateDirectory(directory);
        var stale = ExistingWeightFiles(directory);

        var shards = Pack(items, maxShardBytes);
        var written = new HashSet<string>(StringComparer.Ordinal);
        if (shards.Count == 1)
        {
            SafetensorsWriter.Write(Path.Combine(directory, SingleFileName), shards[0], null, chunkBytes);
            written.Add(SingleFileName);
        }
        else
        {
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i < shards.Count; i++)
            {
                var name = ShardFileName(i + 1, shards.Count);
                SafetensorsWriter.Write(Path.Combine(directory, name), shards[i], null, chunkBytes);
                written.Add(name);
                foreach (var item in shards[i])
                {
                    weightMap[item.Name] = name;
                }
            }
            var totalSize = items.Sum(item => item.ByteLength);
            AtomicFile.Write(Path.Combine(directory, IndexFileName), stream => WriteIndex(stream, totalSize, weightMap));
            written.Add(IndexFileName);
        }

        // The index first, so that no moment has an index naming shards already gone.
        foreach (var name in stale.Where(n => !written.Contains(n)).OrderBy(n => n == IndexFileName ? 0 : 1))
        {
            File.Delete(Path.Combine(directory, name));
        }
    }

    private static List<List<SafetensorsWriter.Item>> Pack(List<SafetensorsWriter.Item> items, long maxShardBytes)
    {
        var shards = new List<List<SafetensorsWriter.Item>> { new() };
        long size = 0;
        foreach (var item in items)
        {
            if (shards[^1].Count > 0 && item.ByteLength > maxShardBytes - size)
            {
                shards.Add([]);
                size = 0;
            }
            shards[^1].Add(item);
            size += item.ByteLength;
        }
        return shards;
    }

    private static void WriteIndex(Stream stream, long totalSize, SortedDictionary<string, string> weightMap)
    {
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions
        {
            Indented = true,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", totalSize);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (var (tensor, shard) in weightMap)
            {
                json.WriteString(tensor, shard);
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
    }

    /// <summary>
    /// The names of the weight files now in <paramref name="directory"/>: <c>model.safetensors</c>, the index, files
    /// named like our shards, and the shards the index lists (when it can be read and they lie in the directory).
    /// </summary>
    private static HashSet<string> ExistingWeightFiles(string directory)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(directory))
        {
            var name = Path.GetFileName(path);
            if (name == SingleFileName || name == IndexFileName || ShardNamePattern().IsMatch(name))
            {
                names.Add(name);
            }
        }
        if (names.Contains(IndexFileName))
        {
            try
            {
                var (weightMap, _) = ReadIndex(directory, Path.Combine(directory, IndexFileName));
                foreach (var shard in weightMap.Select(p => p.Value).Distinct())
                {
                    // Only plain file names: never delete outside the directory or in subdirectories.
                    if (Path.GetFileName(shard) == shard &&
                        shard.EndsWith(".safetensors", StringComparison.Ordinal) &&
                        File.Exists(Path.Combine(directory, shard)))
                    {
                        names.Add(shard);
                    }
                }
            }
            catch (CheckpointFormatException)
            {
                // An unreadable old index: only the files named like ours are known to be weights.
            }
        }
        return names;
    }
}
