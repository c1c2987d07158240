using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Microsoft.Win32.SafeHandles;

namespace LLGBM.Checkpoints;

/// <summary>
/// The validated header of a safetensors file: its metadata and the dtype, shape and byte range of every tensor.
/// <see cref="Read(string)"/> treats the file as untrusted and applies the rules of <see cref="SafetensorsRule"/>
/// in their declared order, so the error names the first rule broken.
/// </summary>
public sealed class SafetensorsHeader
{
    /// <summary>The largest header length N accepted, in bytes (the reference reader's cap).</summary>
    public const long MaxHeaderLength = 100_000_000;

    /// <summary>The key of the optional string-to-string metadata object in the header.</summary>
    public const string MetadataKey = "__metadata__";

    private SafetensorsHeader(
        string file,
        long headerLength,
        long dataLength,
        IReadOnlyDictionary<string, string> metadata,
        IReadOnlyList<SafetensorsEntry> inDataOrder)
    {
        File = file;
        HeaderLength = headerLength;
        DataLength = dataLength;
        Metadata = metadata;
        EntriesInDataOrder = inDataOrder;
        var entries = new Dictionary<string, SafetensorsEntry>(inDataOrder.Count, StringComparer.Ordinal);
        foreach (var entry in inDataOrder)
        {
            entries.Add(entry.Name, entry);
        }
        Entries = entries;
    }

    /// <summary>The path of the file, as given.</summary>
    public string File { get; }

    /// <summary>The header length N: the number of JSON bytes after the 8-byte length, padding included.</summary>
    public long HeaderLength { get; }

    /// <summary>Where the data buffer starts in the file: 8 + <see cref="HeaderLength"/>.</summary>
    public long DataOffset => 8 + HeaderLength;

    /// <summary>The size of the data buffer in bytes: the end of the last tensor.</summary>
    public long DataLength { get; }

    /// <summary>The <c>__metadata__</c> object; empty when the header has none.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensors by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }

    /// <summary>The tensors in the order their bytes occur in the data buffer.</summary>
    public IReadOnlyList<SafetensorsEntry> EntriesInDataOrder { get; }

    /// <summary>Reads and validates the header of the safetensors file at <paramref name="path"/>.</summary>
    /// <exception cref="SafetensorsFormatException">The file breaks a rule of the format.</exception>
    public static SafetensorsHeader Read(string path)
    {
        using var handle = System.IO.File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return Read(handle, path);
    }

    /// <summary>Reads and validates the header of an open file; <paramref name="file"/> names it in errors.</summary>
    internal static SafetensorsHeader Read(SafeFileHandle handle, string file)
    {
        var fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
        {
            throw Fail(file, SafetensorsRule.FileTooSmall,
                $"the file has {fileLength} bytes, expected at least 8 for the header length");
        }

        Span<byte> lengthBytes = stackalloc byte[8];
        ReadExactly(handle, lengthBytes, 0, file);
        var n = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (n > MaxHeaderLength)
        {
            throw Fail(file, SafetensorsRule.HeaderTooLarge,
                $"the header length is {n} bytes, expected at most {MaxHeaderLength}");
        }
        var headerLength = (long)n;
        if (headerLength > fileLength - 8)
        {
            throw Fail(file, SafetensorsRule.HeaderBeyondFile,
                $"the header length is {headerLength} bytes, but the file has only {fileLength - 8} bytes " +
                "after the 8-byte length");
        }

        // Allocated only now that N is known to be at most the cap and within the file.
        var header = new byte[headerLength];
        ReadExactly(handle, header, 8, file);

        var (metadata, entries) = Parse(header, file);

        CheckOffsets(entries, file);
        CheckSizes(entries, file);

        var dataLength = entries.Count == 0 ? 0 : entries[^1].End;
        var available = fileLength - 8 - headerLength;
        if (dataLength > available)
        {
            throw Fail(file, SafetensorsRule.DataTruncated,
                $"the header describes a data buffer of {dataLength} bytes, so the file should have " +
                $"8 + {headerLength} + {dataLength} bytes, but it has {fileLength}");
        }
        if (dataLength < available)
        {
            throw Fail(file, SafetensorsRule.TrailingBytes,
                $"the header describes a data buffer of {dataLength} bytes, so the file should have " +
                $"8 + {headerLength} + {dataLength} = {8 + headerLength + dataLength} bytes, " +
                $"but it has {fileLength}: {available - dataLength} trailing byte(s)");
        }

        return new SafetensorsHeader(file, headerLength, dataLength, metadata, entries);
    }

    private static (IReadOnlyDictionary<string, string> Metadata, List<SafetensorsEntry> Entries) Parse(
        byte[] header, string file)
    {
        CheckUtf8(header, file);

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw new SafetensorsFormatException(file, SafetensorsRule.HeaderNotJson,
                $"the header is not valid JSON: {e.Message}", e);
        }

        IReadOnlyDictionary<string, string> metadata;
        List<SafetensorsEntry> entries;
        using (document)
        {
            (metadata, entries) = ReadSchema(document.RootElement, file);
        }
        CheckDuplicates(header, file);
        return (metadata, entries);
    }

    private static void CheckUtf8(ReadOnlySpan<byte> header, string file)
    {
        Span<char> scratch = stackalloc char[1024];
        var position = 0;
        while (position < header.Length)
        {
            var status = Utf8.ToUtf16(header[position..], scratch, out var read, out _,
                replaceInvalidSequences: false, isFinalBlock: true);
            if (status == System.Buffers.OperationStatus.InvalidData)
            {
                var at = position + read;
                throw Fail(file, SafetensorsRule.HeaderNotUtf8,
                    $"the header is not valid UTF-8: byte 0x{header[at]:X2} at header offset {at} " +
                    $"(file offset {at + 8}) does not start a valid sequence");
            }
            position += read;
            if (status == System.Buffers.OperationStatus.Done)
            {
                break;
            }
        }
    }

    private static (IReadOnlyDictionary<string, string>, List<SafetensorsEntry>) ReadSchema(
        JsonElement root, string file)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Fail(file, SafetensorsRule.HeaderSchema,
                $"expected the header to be a JSON object, found {Describe(root.ValueKind)}");
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<SafetensorsEntry>();
        foreach (var property in root.EnumerateObject())
        {
            if (property.Name == MetadataKey)
            {
                ReadMetadata(property.Value, metadata, file);
            }
            else
            {
                entries.Add(ReadEntry(property.Name, property.Value, file));
            }
        }
        return (metadata, entries);
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string file)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Fail(file, SafetensorsRule.MetadataNotStrings,
                $"expected {MetadataKey} to be an object of strings, found {Describe(value.ValueKind)}");
        }
        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw Fail(file, SafetensorsRule.MetadataNotStrings,
                    $"expected a string for {MetadataKey} key '{item.Name}', found {Describe(item.Value.ValueKind)} " +
                    $"{item.Value.GetRawText()}");
            }
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static SafetensorsEntry ReadEntry(string name, JsonElement value, string file)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Fail(file, SafetensorsRule.HeaderSchema,
                $"tensor '{name}': expected an object with dtype, shape and data_offsets, " +
                $"found {Describe(value.ValueKind)}");
        }

        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in value.EnumerateObject())
        {
            // Unknown fields are ignored, as by the reference reader; a repeated field is caught later.
            switch (field.Name)
            {
                case "dtype": dtypeElement ??= field.Value; break;
                case "shape": shapeElement ??= field.Value; break;
                case "data_offsets": offsetsElement ??= field.Value; break;
            }
        }

        if (dtypeElement is not { } dtypeJson)
        {
            throw Fail(file, SafetensorsRule.HeaderSchema, $"tensor '{name}' has no \"dtype\" field");
        }
        if (dtypeJson.ValueKind != JsonValueKind.String)
        {
            throw Fail(file, SafetensorsRule.HeaderSchema,
                $"tensor '{name}': expected \"dtype\" to be a string, found {Describe(dtypeJson.ValueKind)}");
        }
        var dtypeName = dtypeJson.GetString()!;
        if (!SafetensorsDTypes.TryParse(dtypeName, out var dtype))
        {
            throw Fail(file, SafetensorsRule.UnknownDType,
                $"tensor '{name}' has dtype '{dtypeName}', expected one of " +
                string.Join(", ", SafetensorsDTypes.All.Select(d => d.Name())));
        }

        if (shapeElement is not { } shapeJson)
        {
            throw Fail(file, SafetensorsRule.HeaderSchema, $"tensor '{name}' has no \"shape\" field");
        }
        var shape = ReadNaturals(shapeJson, name, "shape", "dimension", file);

        if (offsetsElement is not { } offsetsJson)
        {
            throw Fail(file, SafetensorsRule.HeaderSchema, $"tensor '{name}' has no \"data_offsets\" field");
        }
        var offsets = ReadNaturals(offsetsJson, name, "data_offsets", "offset", file);
        if (offsets.Length != 2)
        {
            throw Fail(file, SafetensorsRule.HeaderSchema,
                $"tensor '{name}': expected \"data_offsets\" to hold 2 numbers [begin, end], " +
                $"found {offsets.Length}");
        }

        return new SafetensorsEntry(name, dtype, shape, offsets[0], offsets[1]);
    }

    /// <summary>Reads an array of integers in [0, long.MaxValue].</summary>
    private static long[] ReadNaturals(JsonElement array, string tensor, string field, string what, string file)
    {
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw Fail(file, SafetensorsRule.HeaderSchema,
                $"tensor '{tensor}': expected \"{field}\" to be an array of integers, " +
                $"found {Describe(array.ValueKind)}");
        }
        var values = new long[array.GetArrayLength()];
        var i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out var value) || value < 0)
            {
                var found = item.ValueKind == JsonValueKind.Number
                    ? item.GetRawText()
                    : Describe(item.ValueKind);
                throw Fail(file, SafetensorsRule.HeaderSchema,
                    $"tensor '{tensor}': expected {what} {i} of \"{field}\" to be an integer " +
                    $"from 0 to {long.MaxValue}, found {found}");
            }
            values[i++] = value;
        }
        return values;
    }

    /// <summary>
    /// Rejects a name repeated within any object of the header. JsonDocument keeps both copies without complaint,
    /// so this walks the bytes with a <see cref="Utf8JsonReader"/>. The header is known to be valid JSON here.
    /// </summary>
    private static void CheckDuplicates(ReadOnlySpan<byte> header, string file)
    {
        var reader = new Utf8JsonReader(header);
        var scopes = new Stack<(HashSet<string>? Names, string? Owner)>();
        string? lastProperty = null;
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    scopes.Push((new HashSet<string>(StringComparer.Ordinal), scopes.Count == 0 ? null : lastProperty));
                    lastProperty = null;
                    break;
                case JsonTokenType.StartArray:
                    scopes.Push((null, null));
                    break;
                case JsonTokenType.EndObject:
                case JsonTokenType.EndArray:
                    scopes.Pop();
                    break;
                case JsonTokenType.PropertyName:
                    var name = reader.GetString()!;
                    var (names, owner) = scopes.Peek();
                    if (!names!.Add(name))
                    {
                        var where = (scopes.Count, owner) switch
                        {
                            (1, _) => $"tensor name '{name}' occurs twice",
                            (2, MetadataKey) => $"{MetadataKey} key '{name}' occurs twice",
                            (2, _) => $"field '{name}' occurs twice in the entry of tensor '{owner}'",
                            _ => $"key '{name}' occurs twice in one object",
                        };
                        throw Fail(file, SafetensorsRule.DuplicateName, $"{where}; expected every name to be unique");
                    }
                    lastProperty = name;
                    break;
            }
        }
    }

    private static void CheckOffsets(List<SafetensorsEntry> entries, string file)
    {
        foreach (var entry in entries)
        {
            if (entry.End < entry.Begin)
            {
                throw Fail(file, SafetensorsRule.OffsetsReversed,
                    $"tensor '{entry.Name}' has data_offsets [{entry.Begin}, {entry.End}], expected end >= begin");
            }
        }

        entries.Sort((a, b) =>
        {
            var byBegin = a.Begin.CompareTo(b.Begin);
            if (byBegin != 0)
            {
                return byBegin;
            }
            var byEnd = a.End.CompareTo(b.End);
            return byEnd != 0 ? byEnd : string.CompareOrdinal(a.Name, b.Name);
        });

        SafetensorsEntry? previous = null;
        foreach (var entry in entries)
        {
            var expected = previous?.End ?? 0;
            if (entry.Begin != expected)
            {
                if (previous is null)
                {
                    throw Fail(file, SafetensorsRule.OffsetsNotFromZero,
                        $"the first tensor in the data buffer, '{entry.Name}', begins at offset {entry.Begin}, " +
                        "expected 0");
                }
                if (entry.Begin > expected)
                {
                    throw Fail(file, SafetensorsRule.OffsetsGap,
                        $"tensor '{entry.Name}' begins at offset {entry.Begin}, expected {expected} where " +
                        $"'{previous.Name}' ends; {entry.Begin - expected} bytes belong to no tensor");
                }
                throw Fail(file, SafetensorsRule.OffsetsOverlap,
                    $"tensor '{entry.Name}' begins at offset {entry.Begin}, inside '{previous.Name}' which spans " +
                    $"[{previous.Begin}, {previous.End}); expected it to begin at {expected}");
            }
            previous = entry;
        }
    }

    private static void CheckSizes(List<SafetensorsEntry> entries, string file)
    {
        foreach (var entry in entries)
        {
            var size = entry.DType.ElementSize();
            long bytes;
            try
            {
                // As the reference reader: multiply left to right and fail on any overflow.
                long count = 1;
                foreach (var dim in entry.Shape)
                {
                    count = checked(count * dim);
                }
                bytes = checked(count * size);
            }
            catch (OverflowException)
            {
                throw Fail(file, SafetensorsRule.ByteSizeOverflow,
                    $"tensor '{entry.Name}' is {entry}: its element count times {size} bytes does not fit in " +
                    "a 64-bit integer");
            }
            if (bytes != entry.ByteLength)
            {
                throw Fail(file, SafetensorsRule.ByteSizeMismatch,
                    $"tensor '{entry.Name}' is {entry}, which takes {bytes / size} elements × {size} bytes = " +
                    $"{bytes} bytes, but its data_offsets [{entry.Begin}, {entry.End}] span {entry.ByteLength} bytes");
            }
        }
    }

    /// <summary>Fills <paramref name="buffer"/> from <paramref name="offset"/> of the file.</summary>
    internal static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset, string file)
    {
        while (!buffer.IsEmpty)
        {
            var read = RandomAccess.Read(handle, buffer, offset);
            if (read == 0)
            {
                throw Fail(file, SafetensorsRule.DataTruncated,
                    $"the file ended at offset {offset} while {buffer.Length} more bytes were expected " +
                    "(was it changed while being read?)");
            }
            buffer = buffer[read..];
            offset += read;
        }
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private static SafetensorsFormatException Fail(string file, SafetensorsRule rule, string detail) =>
        new(file, rule, detail);
}
