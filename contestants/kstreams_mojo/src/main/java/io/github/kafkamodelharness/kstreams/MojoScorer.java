package io.github.kafkamodelharness.kstreams;

import hex.ModelCategory;
import hex.genmodel.GenModel;
import hex.genmodel.MojoModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * An H2O MOJO (h2o-genmodel) scoring rows given in the bundle's feature order. Returns P(class 1) for a
 * binomial model (preds[2]) and the prediction for a regression model (preds[0]). The model is shared by
 * all stream threads (MOJO scoring keeps no state in the model); each caller owns its scratch arrays.
 */
final class MojoScorer {
  private final GenModel model;
  private final int[] sourceIndex; // MOJO column i takes bundle feature sourceIndex[i]
  private final int rowLength;
  private final int predsSize;
  private final int scoreIndex;
  private final String description;

  MojoScorer(GenModel model, List<String> featureNames) throws UsageException {
    this.model = model;
    ModelCategory cat = model.getModelCategory();
    if (cat == ModelCategory.Binomial) {
      scoreIndex = 2;
    } else if (cat == ModelCategory.Regression) {
      scoreIndex = 0;
    } else {
      throw new UsageException("MOJO model category " + cat + " is not supported (binomial or regression)");
    }
    String[] mojoFeatures = model.features();
    sourceIndex = new int[mojoFeatures.length];
    for (int i = 0; i < mojoFeatures.length; i++) {
      int j = featureNames.indexOf(mojoFeatures[i]);
      if (j < 0) {
        throw new UsageException(
            "MOJO feature '" + mojoFeatures[i] + "' is not in --features (" + String.join(",", featureNames) + ")");
      }
      if (model.getDomainValues(i) != null) {
        throw new UsageException("MOJO feature '" + mojoFeatures[i] + "' is categorical; only numeric features");
      }
      sourceIndex[i] = j;
    }
    rowLength = Math.max(model.getNumCols(), mojoFeatures.length);
    predsSize = model.getPredsSize();
    if (predsSize <= scoreIndex) {
      throw new UsageException("MOJO predicts " + predsSize + " values; expected more than " + scoreIndex);
    }
    description =
        model.getClass().getSimpleName() + " " + cat + ", " + mojoFeatures.length + " features";
  }

  static MojoScorer load(String path, List<String> featureNames) throws UsageException {
    if (!Files.isRegularFile(Path.of(path))) {
      throw new UsageException("MOJO file not found: " + path);
    }
    GenModel model;
    try {
      model = MojoModel.load(path);
    } catch (IOException | RuntimeException e) {
      throw new UsageException("cannot load MOJO " + path + ": " + Wire.describe(e));
    }
    return new MojoScorer(model, featureNames);
  }

  String description() {
    return description;
  }

  /** Scratch arrays for one thread: {row, preds}. */
  double[][] newScratch() {
    double[] row = new double[rowLength];
    Arrays.fill(row, Double.NaN);
    return new double[][] {row, new double[predsSize]};
  }

  /** Scores one row given in the bundle's feature order. */
  double score(double[] bundleRow, double[][] scratch) {
    double[] row = scratch[0];
    for (int i = 0; i < sourceIndex.length; i++) {
      row[i] = bundleRow[sourceIndex[i]];
    }
    double[] preds = scratch[1];
    Arrays.fill(preds, 0.0);
    return model.score0(row, preds)[scoreIndex];
  }
}
