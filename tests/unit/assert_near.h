/* assert_near(a, b, tol): fails the running cmocka test unless |a - b| <= tol (NaN never is),
 * printing both values in full. Include after cmocka.h. */
#ifndef AUGSERVE_TEST_ASSERT_NEAR_H
#define AUGSERVE_TEST_ASSERT_NEAR_H

#include <math.h>

#define assert_near(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            fail_msg("%s:%d: %.17g is not %.17g within %g", __FILE__, __LINE__, a_, b_,            \
                     (double)(tol));                                                               \
    } while (0)

#endif
