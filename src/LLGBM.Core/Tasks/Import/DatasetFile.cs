using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Serialization;

namespace LLGBM.Tasks.Import;

/// <summary>
/// Reads the records of a dataset export: JSON Lines (what Hugging Face <c>datasets</c>' <c>to_json</c> writes; any
/// extension but <c>.parquet</c>) or Parquet (the layout of the Hub's dataset files and <c>to_parquet</c>). Each record
/// becomes a JSON object, so both formats go through the same converters.
/// </summary>
public static class DatasetFile
{
    static readonly ParquetOptions ParquetReading = new() { TreatByteArrayAsString = true };

    /// <summary>True when <paramref name="path"/> names a Parquet file (by its extension).</summary>
    public static bool IsParquet(string path) => path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase);

    /// <summary>Every record of <paramref name="path"/>, in file order. Blank JSONL lines are skipped.</summary>
    /// <exception cref="TaskFormatException">The file is missing or unreadable, or a JSONL line is not a JSON object.</exception>
    public static IReadOnlyList<DatasetRow> Read(string path)
    {
        if (!File.Exists(path))
            throw new TaskFormatException(path, "no such file.");
        return IsParquet(path) ? ReadParquet(path) : ReadJsonLines(path);
    }

    static List<DatasetRow> ReadJsonLines(string path)
    {
        var rows = new List<DatasetRow>();
        var number = 0;
        foreach (var line in TextFiles.ReadAllLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            JsonElement value;
            try
            {
                using var document = JsonDocument.Parse(line);
                value = document.RootElement.Clone();
            }
            catch (JsonException e)
            {
                throw new TaskFormatException(path, number, $"not JSON: expected one JSON object per line ({e.Message}).");
            }
            if (value.ValueKind != JsonValueKind.Object)
                throw new TaskFormatException(path, number, $"expected a JSON object, found {TaskDirectory.Describe(value)}.");
            rows.Add(new DatasetRow(path, number, value));
        }
        return rows;
    }

    static List<DatasetRow> ReadParquet(string path)
    {
        IList<Dictionary<string, object>> records;
        try
        {
            using var stream = File.OpenRead(path);
            records = ParquetSerializer.DeserializeUntypedAsync(stream, ParquetReading).GetAwaiter().GetResult().Data;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Parquet.Net reports corrupt or unsupported files with several exception types.
            throw new TaskFormatException(path, $"not a readable Parquet file ({e.Message}).", e);
        }
        var rows = new List<DatasetRow>(records.Count);
        for (var i = 0; i < records.Count; i++)
        {
            JsonNode? node;
            try
            {
                node = ToJson(records[i]);
            }
            catch (NotSupportedException e)
            {
                throw new TaskFormatException(path, i + 1, e.Message);
            }
            rows.Add(new DatasetRow(path, i + 1, JsonSerializer.SerializeToElement(node)));
        }
        return rows;
    }

    /// <summary>A value of Parquet.Net's untyped reading as JSON: structs become objects, lists arrays.</summary>
    static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        string text => JsonValue.Create(text),
        ReadOnlyMemory<char> text => JsonValue.Create(text.ToString()),
        byte[] bytes => JsonValue.Create(Encoding.UTF8.GetString(bytes)),
        ReadOnlyMemory<byte> bytes => JsonValue.Create(Encoding.UTF8.GetString(bytes.Span)),
        bool flag => JsonValue.Create(flag),
        sbyte or byte or short or ushort or int or uint or long => JsonValue.Create(System.Convert.ToInt64(value, CultureInfo.InvariantCulture)),
        ulong number => JsonValue.Create(number),
        float or double or decimal => JsonValue.Create(System.Convert.ToDouble(value, CultureInfo.InvariantCulture)),
        IDictionary<string, object> record => new JsonObject(record.Select(p => KeyValuePair.Create(p.Key, ToJson(p.Value)))),
        IEnumerable items => new JsonArray([.. items.Cast<object?>().Select(ToJson)]),
        _ => throw new NotSupportedException(
            $"a column of type {value.GetType().Name}, which the importer cannot read (expected strings, numbers, booleans, lists and structs)."),
    };
}
