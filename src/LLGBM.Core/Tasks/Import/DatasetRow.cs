using System.Globalization;
using System.Text.Json;

namespace LLGBM.Tasks.Import;

/// <summary>
/// One record of a dataset export (a JSONL line or a Parquet row) as JSON, with accessors that raise a
/// <see cref="TaskFormatException"/> naming the file, the row and the field when the record does not have the expected
/// layout. Field paths may be dotted ("choices.text").
/// </summary>
/// <param name="File">The export file, as given.</param>
/// <param name="Number">The 1-based line (JSONL) or row (Parquet) of the record.</param>
/// <param name="Value">The record.</param>
public sealed record DatasetRow(string File, int Number, JsonElement Value)
{
    /// <summary>The error for this record: <paramref name="detail"/> says what was expected and what was found.</summary>
    public TaskFormatException Error(string detail) => new(File, Number, detail);

    /// <summary>The field at <paramref name="path"/>, or null when it is missing or JSON null.</summary>
    public JsonElement? Find(string path)
    {
        var current = Value;
        foreach (var key in path.Split('.'))
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(key, out var next))
                return null;
            current = next;
        }
        return current.ValueKind == JsonValueKind.Null ? null : current;
    }

    /// <summary>The field at <paramref name="path"/>; an error when it is missing.</summary>
    public JsonElement Field(string path) =>
        Find(path) ?? throw Error($"missing \"{path}\" (fields present: {Keys()}).");

    /// <summary>The non-empty string at <paramref name="path"/>, trimmed.</summary>
    public string Text(string path)
    {
        var value = Field(path);
        if (value.ValueKind != JsonValueKind.String)
            throw Error($"\"{path}\" must be a string, found {TaskDirectory.Describe(value)}.");
        var text = value.GetString()!.Trim();
        return text.Length > 0 ? text : throw Error($"\"{path}\" is empty.");
    }

    /// <summary>The string at <paramref name="path"/>, trimmed, or null when the field is missing or empty.</summary>
    public string? OptionalText(string path)
    {
        if (Find(path) is not { } value)
            return null;
        if (value.ValueKind != JsonValueKind.String)
            throw Error($"\"{path}\" must be a string, found {TaskDirectory.Describe(value)}.");
        var text = value.GetString()!.Trim();
        return text.Length > 0 ? text : null;
    }

    /// <summary>The list of non-empty strings at <paramref name="path"/>, each trimmed.</summary>
    public IReadOnlyList<string> TextList(string path)
    {
        var value = Field(path);
        if (value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Any(item => item.ValueKind != JsonValueKind.String))
            throw Error($"\"{path}\" must be a list of strings, found {TaskDirectory.Describe(value)}.");
        var items = value.EnumerateArray().Select(item => item.GetString()!.Trim()).ToArray();
        for (var i = 0; i < items.Length; i++)
            if (items[i].Length == 0)
                throw Error($"\"{path}\" item {i + 1} is empty.");
        return items;
    }

    /// <summary>The integer at <paramref name="path"/>: a JSON integer or a string holding one ("2").</summary>
    public int Integer(string path)
    {
        var value = Field(path);
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number))
            return number;
        if (value.ValueKind == JsonValueKind.String
            && int.TryParse(value.GetString()!.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out number))
            return number;
        throw Error($"\"{path}\" must be an integer (or a string holding one), found {TaskDirectory.Describe(value)}"
            + (value.ValueKind == JsonValueKind.String && value.GetString()!.Trim().Length == 0
                ? "; unlabelled rows (as in hidden test splits) cannot be imported."
                : "."));
    }

    /// <summary>The boolean at <paramref name="path"/>: true/false, or the strings "true"/"false".</summary>
    public bool Boolean(string path)
    {
        var value = Field(path);
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.String when bool.TryParse(value.GetString()!.Trim(), out var parsed) => parsed,
            _ => throw Error($"\"{path}\" must be true or false, found {TaskDirectory.Describe(value)}."),
        };
    }

    string Keys() =>
        Value.ValueKind == JsonValueKind.Object
            ? string.Join(", ", Value.EnumerateObject().Select(p => p.Name))
            : $"none: the record is {TaskDirectory.Describe(Value)}";
}
