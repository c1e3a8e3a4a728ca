using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.Data;

/// <summary>
/// Recipes from public data formats to Cora's layout, following CoLLM's processing:
/// <list type="bullet">
/// <item>MovieLens-1M (<c>ratings.dat</c>, <c>movies.dat</c>): label = rating &gt; 3; interactions from 2001-06-01 (UTC):
/// train the first 10 months, valid the next 5, test the last 5.</item>
/// <item>MovieLens-100K (<c>u.data</c>, <c>u.item</c>, ISO-8859-1): label = rating &gt; 3; sorted by time, train the
/// first 80%, valid the next 10%, test the last 10% (the data spans only seven months).</item>
/// <item>Amazon reviews 2018 (review and metadata JSON lines): 2017 only; users and items with more than 20
/// ratings in 2017 (one pass); label = 5 stars; train January–November; December sorted by time and halved into
/// valid and test. String ids are numbered 1.. in order of first appearance.</item>
/// </list>
/// In every recipe rows are sorted by time (ties by user, then item); <c>his</c> = the user's earlier liked items
/// (label 1) within the converted period, oldest first; <c>not_cold</c> = user and item both occur in train.
/// Titles have tabs and line breaks replaced by spaces so the TSV stays one row per line.
/// </summary>
public static class DatasetRecipes
{
    private sealed record Rating(int User, int Item, double Stars, long Time);

    private static SplitDataset Build(List<Rating> ratings, Func<Rating, bool> label, Func<Rating, int> split, Dictionary<int, string> titles)
    {
        // Items without a title cannot be prompted: their ratings are left out (and counted), so `cora train` accepts the output.
        var untitled = ratings.Where(r => !titles.TryGetValue(r.Item, out var t) || ItemCatalog.CleanTitle(t).Length == 0).ToList();
        if (untitled.Count > 0) ratings = ratings.Except(untitled).ToList();
        ratings = ratings.OrderBy(r => r.Time).ThenBy(r => r.User).ThenBy(r => r.Item).ToList();
        var trainUsers = ratings.Where(r => split(r) == 0).Select(r => r.User).ToHashSet();
        var trainItems = ratings.Where(r => split(r) == 0).Select(r => r.Item).ToHashSet();
        var liked = new Dictionary<int, List<int>>();
        var sets = new[] { new List<Interaction>(), new List<Interaction>(), new List<Interaction>() };
        foreach (var r in ratings)
        {
            int s = split(r);
            if (!liked.TryGetValue(r.User, out var his)) liked[r.User] = his = new List<int>();
            bool y = label(r);
            if (s >= 0)
                sets[s].Add(new Interaction(r.User, r.Item, y, r.Time, trainUsers.Contains(r.User) && trainItems.Contains(r.Item), his.ToArray()));
            if (y) his.Add(r.Item);
        }
        var used = sets.SelectMany(x => x).Select(r => r.ItemId).Concat(sets.SelectMany(x => x).SelectMany(r => r.History)).ToHashSet();
        var catalog = new ItemCatalog(titles.Where(kv => used.Contains(kv.Key)));
        return new SplitDataset(sets[0], sets[1], sets[2], catalog, (untitled.Count, untitled.Select(r => r.Item).Distinct().Count()));
    }

    private static IEnumerable<(int lineNo, string line)> Lines(string path, Encoding enc)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"File not found: '{path}'.", path);
        int n = 0;
        foreach (var l in File.ReadLines(path, enc))
        {
            n++;
            if (l.Length > 0) yield return (n, l);
        }
    }

    private static int Int(string s, string path, int line, string what) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v
        : throw new InvalidDataException($"{path}: line {line}: {what} '{ErrorText.Elide(s, 40)}' is not a non-negative integer.");

    private static long Long(string s, string path, int line, string what) =>
        long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v
        : throw new InvalidDataException($"{path}: line {line}: {what} '{ErrorText.Elide(s, 40)}' is not a non-negative integer.");

    private static readonly Encoding Latin1 = Encoding.Latin1;

    /// <summary>MovieLens-1M raw files (<c>UserID::MovieID::Rating::Timestamp</c>, <c>MovieID::Title::Genres</c>, ISO-8859-1).</summary>
    public static SplitDataset MovieLens1M(string ratingsDat, string moviesDat)
    {
        var titles = new Dictionary<int, string>();
        foreach (var (n, l) in Lines(moviesDat, Latin1))
        {
            var f = l.Split("::");
            if (f.Length < 2) throw new InvalidDataException($"{moviesDat}: line {n}: expected 'MovieID::Title::Genres'.");
            titles[Int(f[0], moviesDat, n, "MovieID")] = f[1];
        }
        var ratings = new List<Rating>();
        foreach (var (n, l) in Lines(ratingsDat, Latin1))
        {
            var f = l.Split("::");
            if (f.Length != 4) throw new InvalidDataException($"{ratingsDat}: line {n}: expected 'UserID::MovieID::Rating::Timestamp'.");
            ratings.Add(new Rating(Int(f[0], ratingsDat, n, "UserID"), Int(f[1], ratingsDat, n, "MovieID"), Int(f[2], ratingsDat, n, "Rating"), Long(f[3], ratingsDat, n, "Timestamp")));
        }
        var start = new DateTimeOffset(2001, 6, 1, 0, 0, 0, TimeSpan.Zero);
        long t0 = start.ToUnixTimeSeconds(), t1 = start.AddMonths(10).ToUnixTimeSeconds(), t2 = start.AddMonths(15).ToUnixTimeSeconds(), t3 = start.AddMonths(20).ToUnixTimeSeconds();
        ratings = ratings.Where(r => r.Time >= t0 && r.Time < t3).ToList();
        return Build(ratings, r => r.Stars > 3, r => r.Time < t1 ? 0 : r.Time < t2 ? 1 : 2, titles);
    }

    /// <summary>MovieLens-100K raw files (<c>u.data</c> tab-separated, <c>u.item</c> '|'-separated ISO-8859-1).</summary>
    public static SplitDataset MovieLens100K(string uData, string uItem)
    {
        var titles = new Dictionary<int, string>();
        foreach (var (n, l) in Lines(uItem, Latin1))
        {
            var f = l.Split('|');
            if (f.Length < 2) throw new InvalidDataException($"{uItem}: line {n}: expected 'id|title|...'.");
            titles[Int(f[0], uItem, n, "item id")] = f[1];
        }
        var ratings = new List<Rating>();
        foreach (var (n, l) in Lines(uData, Latin1))
        {
            var f = l.Split('\t');
            if (f.Length != 4) throw new InvalidDataException($"{uData}: line {n}: expected 'user<TAB>item<TAB>rating<TAB>timestamp'.");
            ratings.Add(new Rating(Int(f[0], uData, n, "user"), Int(f[1], uData, n, "item"), Int(f[2], uData, n, "rating"), Long(f[3], uData, n, "timestamp")));
        }
        var sorted = ratings.OrderBy(r => r.Time).ThenBy(r => r.User).ThenBy(r => r.Item).ToList();
        int nTrain = (int)(sorted.Count * 0.8), nValid = (int)(sorted.Count * 0.9);
        var rank = new Dictionary<Rating, int>(ReferenceEqualityComparer.Instance as IEqualityComparer<Rating> ?? EqualityComparer<Rating>.Default);
        for (int i = 0; i < sorted.Count; i++) rank[sorted[i]] = i;
        return Build(sorted, r => r.Stars > 3, r => rank[r] < nTrain ? 0 : rank[r] < nValid ? 1 : 2, titles);
    }

    /// <summary>Amazon reviews 2018 JSON lines (reviewerID, asin, overall, unixReviewTime) and metadata (asin, title).</summary>
    public static SplitDataset Amazon2018(string reviewsJsonl, string metaJsonl, int year = 2017, int minRatings = 20)
    {
        var raw = new List<(string user, string item, double stars, long time)>();
        foreach (var (n, l) in Lines(reviewsJsonl, Encoding.UTF8))
        {
            try
            {
                using var d = JsonDocument.Parse(l);
                var r = d.RootElement;
                string user = r.GetProperty("reviewerID").GetString() ?? throw new InvalidOperationException("reviewerID is null");
                string item = r.GetProperty("asin").GetString() ?? throw new InvalidOperationException("asin is null");
                raw.Add((user, item, r.GetProperty("overall").GetDouble(), r.GetProperty("unixReviewTime").GetInt64()));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            { throw new InvalidDataException($"{reviewsJsonl}: line {n}: expected a JSON object with reviewerID, asin, overall, unixReviewTime ({e.Message}).", e); }
        }
        var metaTitles = new Dictionary<string, string>();
        foreach (var (n, l) in Lines(metaJsonl, Encoding.UTF8))
        {
            try
            {
                using var d = JsonDocument.Parse(l);
                var r = d.RootElement;
                if (r.ValueKind == JsonValueKind.Object && r.TryGetProperty("asin", out var a) && a.ValueKind == JsonValueKind.String
                    && r.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String)
                    metaTitles[a.GetString()!] = t.GetString()!;
            }
            catch (JsonException e) { throw new InvalidDataException($"{metaJsonl}: line {n}: not valid JSON ({e.Message}).", e); }
        }
        long y0 = new DateTimeOffset(year, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds();
        long dec = new DateTimeOffset(year, 12, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds();
        long y1 = new DateTimeOffset(year + 1, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds();
        var inYear = raw.Where(r => r.time >= y0 && r.time < y1).ToList();
        var userCount = inYear.GroupBy(r => r.user).ToDictionary(g => g.Key, g => g.Count());
        var itemCount = inYear.GroupBy(r => r.item).ToDictionary(g => g.Key, g => g.Count());
        var kept = inYear.Where(r => userCount[r.user] > minRatings && itemCount[r.item] > minRatings)
            .OrderBy(r => r.time).ThenBy(r => r.user, StringComparer.Ordinal).ThenBy(r => r.item, StringComparer.Ordinal).ToList();
        var uid = new Dictionary<string, int>(); var iid = new Dictionary<string, int>();
        int U(string s) => uid.TryGetValue(s, out var v) ? v : uid[s] = uid.Count + 1;
        int I(string s) => iid.TryGetValue(s, out var v) ? v : iid[s] = iid.Count + 1;
        var ratings = kept.Select(r => new Rating(U(r.user), I(r.item), r.stars, r.time)).ToList();
        int decCount = ratings.Count(r => r.Time >= dec);
        var decRows = ratings.Where(r => r.Time >= dec).ToList();      // already sorted by time
        var validSet = new HashSet<Rating>(decRows.Take(decCount / 2), ReferenceEqualityComparer.Instance as IEqualityComparer<Rating>);
        var titles = iid.ToDictionary(kv => kv.Value, kv => metaTitles.TryGetValue(kv.Key, out var t) ? t : kv.Key);
        return Build(ratings, r => r.Stars >= 5, r => r.Time < dec ? 0 : validSet.Contains(r) ? 1 : 2, titles);
    }
}
